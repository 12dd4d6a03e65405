"""Stand-in for `ultralytics.nn.modules.head`: the YOLOv8 Detect head."""
import torch
import torch.nn as nn

from .block import DFL
from .conv import Conv


class Detect(nn.Module):
    """Per level, a box branch cv2[i] (Conv, Conv, Conv2d to 4 * reg_max) and a class branch cv3[i]
    (Conv, Conv, Conv2d to nc), and the DFL projection. The real head decodes boxes at inference; this one
    returns the raw per-level (box, cls) maps, which is what the test compares."""

    dynamic = False
    export = False
    shape = None
    anchors = torch.empty(0)
    strides = torch.empty(0)

    def __init__(self, nc=80, ch=()):
        super().__init__()
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = 16
        self.no = nc + 4 * self.reg_max
        self.stride = torch.zeros(self.nl)
        c2 = max(16, ch[0] // 4, 4 * self.reg_max)
        c3 = max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg_max, 1)) for c in ch)
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for c in ch)
        self.dfl = DFL(self.reg_max)

    def forward(self, x):
        return [(self.cv2[i](x[i]), self.cv3[i](x[i])) for i in range(self.nl)]
