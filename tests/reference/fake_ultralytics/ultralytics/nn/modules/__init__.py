"""Stand-in for `ultralytics.nn.modules` (see the package docstring)."""
from .block import C2f, DFL, SPPF, Bottleneck
from .conv import Concat, Conv
from .head import Detect

__all__ = ("Bottleneck", "C2f", "Concat", "Conv", "Detect", "DFL", "SPPF")
