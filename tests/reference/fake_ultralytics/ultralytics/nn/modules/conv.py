"""Stand-in for `ultralytics.nn.modules.conv`: Conv (conv + BatchNorm + SiLU) and Concat."""
import torch
import torch.nn as nn


class Conv(nn.Module):
    """Conv2d without bias, BatchNorm2d, activation. Like Ultralytics', every instance shares the one
    class-level SiLU, so a pickled model refers to a single activation object many times."""

    default_act = nn.SiLU()

    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = self.default_act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Concat(nn.Module):
    """Concatenates a list of tensors along dimension `d`."""

    def __init__(self, dimension=1):
        super().__init__()
        self.d = dimension

    def forward(self, x):
        return torch.cat(x, self.d)
