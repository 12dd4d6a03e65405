"""A stand-in for the `ultralytics` package, for detkit's checkpoint-import test only.

Real Ultralytics checkpoints pickle whole module objects, so their classes are referenced by module path
(`ultralytics.nn.tasks.DetectionModel`, `ultralytics.nn.modules.conv.Conv`, ...). This package defines
classes under those paths with the attributes, submodule names and tensors of YOLOv8 detection models
(8.1-era layout), so that tests/reference/test_import_reference.py can write checkpoints shaped like real
ones without installing Ultralytics. Written from the published layout; it is not Ultralytics' code and
implements only what the test uses (construction, and the raw head outputs of a forward pass).
"""
__version__ = "8.1.0"
