"""Stand-in for `ultralytics.nn.tasks`: BaseModel and DetectionModel, built from a model-yaml dict."""
import math

import torch
import torch.nn as nn

from .modules import C2f, SPPF, Concat, Conv, Detect

MODULES = {"Conv": Conv, "C2f": C2f, "SPPF": SPPF, "Concat": Concat, "Detect": Detect, "nn.Upsample": nn.Upsample}


class BaseModel(nn.Module):
    """Runs `self.model` (an nn.Sequential whose layers carry i, f, type, np) keeping the outputs that later
    layers read (`self.save`)."""

    def forward(self, x):
        outputs = []
        for m in self.model:
            if m.f != -1:
                x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
            x = m(x)
            outputs.append(x if m.i in self.save else None)
        return x

    def _apply(self, fn, *args, **kwargs):
        """Like Ultralytics': the head's stride/anchor tensors are plain attributes, not buffers, but follow
        .half() / .to() too (so a half model pickles an fp16 `model.22.stride`)."""
        self = super()._apply(fn, *args, **kwargs)
        head = self.model[-1]
        head.stride, head.anchors, head.strides = fn(head.stride), fn(head.anchors), fn(head.strides)
        return self


class DetectionModel(BaseModel):
    """A YOLOv8 detection model from a model-yaml dict (nc, scales, scale, backbone, head)."""

    def __init__(self, cfg, ch=3, nc=None):
        super().__init__()
        self.yaml = dict(cfg, ch=ch)
        if nc is not None:
            self.yaml["nc"] = nc
        self.model, self.save = parse_model(self.yaml, ch)
        self.names = {i: str(i) for i in range(self.yaml["nc"])}
        self.inplace = self.yaml.get("inplace", True)
        head = self.model[-1]
        head.stride = torch.tensor([8.0, 16.0, 32.0])
        self.stride = head.stride
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps, m.momentum = 1e-3, 0.03
            elif isinstance(m, nn.SiLU):
                m.inplace = True


def parse_model(d, ch):
    """Builds the layers of a model-yaml dict: returns (nn.Sequential, sorted indices of saved outputs)."""
    depth, width, max_channels = d["scales"][d["scale"]]
    channels, layers, save = [ch], [], set()
    for i, (f, n, name, args) in enumerate(d["backbone"] + d["head"]):
        kind = MODULES[name]
        if kind in (Conv, C2f, SPPF):
            c2 = int(math.ceil(min(args[0], max_channels) * width / 8)) * 8
            args = [channels[f], c2, *args[1:]]
            if kind is C2f:
                args.insert(2, max(round(n * depth), 1) if n > 1 else n)
        elif kind is Concat:
            c2 = sum(channels[j] for j in f)
        elif kind is Detect:
            args = [d["nc"], [channels[j] for j in f]]
        else:
            c2 = channels[f]
        m = kind(*args)
        m.i, m.f, m.np = i, f, sum(p.numel() for p in m.parameters())
        m.type = f"{kind.__module__}.{kind.__qualname__}"
        save.update(j % i for j in ([f] if isinstance(f, int) else f) if j != -1)
        layers.append(m)
        if i == 0:
            channels = []  # from here on, channels[j] is layer j's output
        channels.append(c2)
    return nn.Sequential(*layers), sorted(save)
