"""Stand-in for `ultralytics.utils`: only IterableSimpleNamespace, the type of a training model's `args`."""
from types import SimpleNamespace


class IterableSimpleNamespace(SimpleNamespace):
    """A SimpleNamespace that iterates over its (name, value) pairs."""

    def __iter__(self):
        return iter(vars(self).items())
