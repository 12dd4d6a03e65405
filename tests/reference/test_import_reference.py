"""`detkit import` reads PyTorch checkpoints exactly as torch.save wrote them, and imports them onto detkit's model.

PyTorch (Debian's python3-torch) writes checkpoint files of a yolo-n detector with 3 classes and seeded random
weights (bench/train/peer.py's Detector, which has detkit's architecture and parameter names): state dicts in
the zip and legacy containers, in float16 and bfloat16, with DDP's `module.` prefix; a file of assorted tensors
(every dtype, 0-d, empty, non-contiguous and storage-sharing views, an nn.Parameter) and plain values; and
Ultralytics-style YOLOv8 training checkpoints pickling a whole DetectionModel, written with the stand-in
package in fake_ultralytics/ (classes under Ultralytics' module paths, weights copied from the detector).
`detkit import FILE --list --json` must list every tensor with its dtype, shape, CRC-32 of its bytes and
parameter flag, and the file's container, entry, layout, class names and image size; `detkit import FILE
--out OUT.pt --json` must load every detkit tensor (nothing new, nothing unused), and the imported model,
run by model_forward_tool, must give the detector's eval-mode head outputs within 1e-4 relative (for fp16
files, the detector with its weights rounded through fp16). Truncated and bit-flipped files must fail with
exit code 6 and an `error:` line naming the file. Run by CTest with DETKIT_BIN (the detkit executable) and
MODEL_FORWARD_TOOL (tests/reference/model_forward_tool) set; `--fixtures-only DIR` only writes the files
into DIR and checks the fixtures themselves, with no detkit binary.
"""
import argparse
import copy
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
FAKE_ULTRALYTICS = HERE / "fake_ultralytics"
sys.path.insert(0, str(HERE.parents[1] / "bench" / "train"))
sys.path.insert(0, str(FAKE_ULTRALYTICS))
import peer  # noqa: E402
import ultralytics  # noqa: E402
from ultralytics.nn.tasks import DetectionModel  # noqa: E402
from ultralytics.utils import IterableSimpleNamespace  # noqa: E402

SEED = 20260516
MODEL, CLASSES = "yolo-n", 3
NAMES = ["RBC", "WBC", "Platelets"]
IMGSZ = 320
HEIGHT, WIDTH = 320, 256  # model_forward_tool's input
EXIT_BAD_FILE = 6
MODULE_CLASS = "ultralytics.nn.tasks.DetectionModel"
NECK_LAYERS = {0: 12, 1: 15, 2: 16, 3: 18, 4: 19, 5: 21}  # detkit neck.K -> Ultralytics model.N
INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


# ------------------------------------------------------------------------------------ tensor descriptions

@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple
    crc32: int
    parameter: bool


def tensor_bytes(t):
    """The tensor's elements in row-major order, little-endian (what --list's crc32 covers)."""
    t = t.detach().contiguous()
    if t.is_complex():
        t = torch.view_as_real(t).contiguous()
    array = t.view(INT_OF_SIZE[t.element_size()]).numpy()
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def tensor_info(t):
    return TensorInfo(str(t.dtype).replace("torch.", ""), tuple(t.shape), zlib.crc32(tensor_bytes(t)),
                      isinstance(t, nn.Parameter))


def describe(tensors, parameters=()):
    """name -> TensorInfo; `parameters` names the entries that are nn.Parameters of a module tree."""
    infos = {name: tensor_info(t) for name, t in tensors.items()}
    return {name: replace(info, parameter=info.parameter or name in parameters) for name, info in infos.items()}


def with_float_dtype(state, dtype):
    """A copy of a state dict (keeping `_metadata`) with its floating-point tensors cast to `dtype`."""
    out = OrderedDict((k, v.to(dtype) if v.is_floating_point() else v) for k, v in state.items())
    out._metadata = state._metadata
    return out


# --------------------------------------------------------------------------------------------- fixtures

def make_detector():
    """peer.Detector with seeded random weights. Its BatchNorm statistics are measured on random images, then
    jittered, so that activations keep their scale through the network and the outputs depend on every layer
    (with raw random statistics they fade to the head biases)."""
    torch.manual_seed(SEED)
    detector = peer.Detector(MODEL, classes=CLASSES)
    gen = torch.Generator().manual_seed(SEED)
    norms = [m for m in detector.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in norms:
            m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration batch
        for m in detector.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.randn(m.out_channels, generator=gen) * 0.5)
        detector.train()(torch.rand(4, 3, HEIGHT, WIDTH, generator=gen))
        for m in norms:
            m.momentum = 0.03
            m.running_mean.add_(torch.randn(m.num_features, generator=gen) * 0.05)
            m.running_var.mul_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
            m.num_batches_tracked.fill_(int(torch.randint(1, 100000, (), generator=gen)))
    return detector.eval()


def head_outputs(detector_or_model, image):
    """The eval-mode head outputs flattened the way model_forward_tool writes them: per level, finest
    first, the box map [1, 64, H, W] then the class map [1, C, H, W]."""
    with torch.no_grad():
        levels = detector_or_model(image)
    return torch.cat([t.flatten() for pair in levels for t in pair])


def reference_outputs(weights, image):
    detector = peer.Detector(MODEL, classes=CLASSES)
    detector.load_state_dict(weights)
    return head_outputs(detector.eval(), image)


def yolov8_yaml():
    """The published yolov8.yaml with scale n, as Ultralytics' yaml_model_load returns it."""
    return {
        "nc": 80,
        "scales": {"n": [0.33, 0.25, 1024], "s": [0.33, 0.50, 1024], "m": [0.67, 0.75, 768],
                   "l": [1.00, 1.00, 512], "x": [1.00, 1.25, 512]},
        "backbone": [[-1, 1, "Conv", [64, 3, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C2f", [128, True]],
                     [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C2f", [256, True]], [-1, 1, "Conv", [512, 3, 2]],
                     [-1, 6, "C2f", [512, True]], [-1, 1, "Conv", [1024, 3, 2]], [-1, 3, "C2f", [1024, True]],
                     [-1, 1, "SPPF", [1024, 5]]],
        "head": [[-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 6], 1, "Concat", [1]], [-1, 3, "C2f", [512]],
                 [-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 4], 1, "Concat", [1]], [-1, 3, "C2f", [256]],
                 [-1, 1, "Conv", [256, 3, 2]], [[-1, 12], 1, "Concat", [1]], [-1, 3, "C2f", [512]],
                 [-1, 1, "Conv", [512, 3, 2]], [[-1, 9], 1, "Concat", [1]], [-1, 3, "C2f", [1024]],
                 [[15, 18, 21], 1, "Detect", ["nc"]]],
        "scale": "n",
        "yaml_file": "yolov8n.yaml",
    }


def ultralytics_name(name):
    """detkit's tensor name -> the Ultralytics DetectionModel's (the mapping `detkit import` applies)."""
    if name == "bins":
        return "model.22.dfl.conv.weight"
    group, index, rest = name.split(".", 2)
    if group == "backbone":
        return f"model.{index}.{rest}"
    if group == "neck":
        return f"model.{NECK_LAYERS[int(index)]}.{rest}"
    branch = {"box_heads": "cv2", "cls_heads": "cv3"}[group]
    step, rest = rest.split(".", 1)
    if step == "2":  # detkit's plain ConvUnit wraps the final nn.Conv2d as `.conv`
        rest = rest.removeprefix("conv.")
    return f"model.22.{branch}.{index}.{step}.{rest}"


def ultralytics_model(detector, train_args):
    """An Ultralytics-layout YOLOv8n DetectionModel holding the detector's weights, with the attributes a
    trainer sets (nc, names, args), its parameters frozen as in saved checkpoints."""
    model = DetectionModel(yolov8_yaml(), nc=CLASSES)
    target = model.state_dict()
    source = {ultralytics_name(k): v for k, v in detector.state_dict().items()}
    if source.keys() != target.keys():
        sys.exit(f"fixture: the Ultralytics layout does not match the detector: only in the detector "
                 f"{sorted(source.keys() - target.keys())[:5]}, only in Ultralytics' "
                 f"{sorted(target.keys() - source.keys())[:5]}")
    with torch.no_grad():
        for k, v in source.items():
            target[k].copy_(v.view_as(target[k]))
    model.nc, model.names, model.args = CLASSES, dict(enumerate(NAMES)), train_args
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def ultralytics_checkpoint(model, ema, train_args):
    return {"epoch": -1, "best_fitness": None, "model": model, "ema": ema, "updates": 10 if ema is not None else None,
            "optimizer": None, "train_args": train_args, "date": "2024-01-15T10:20:30.123456", "version": "8.1.0"}


def mixed_values():
    """Tensors of every dtype and layout torch.save has to describe, and plain values around them.
    Returns (the dict to save, its top-level tensors, the tensors nested deeper)."""
    gen = torch.Generator().manual_seed(SEED + 1)
    shared = torch.randn(64, generator=gen)
    tensors = {
        "float32": torch.randn(3, 4, generator=gen),
        "float64": torch.randn(5, dtype=torch.float64, generator=gen),
        "float16": torch.randn(2, 3, generator=gen).half(),
        "bfloat16": torch.randn(4, 2, generator=gen).bfloat16(),
        "int64": torch.randint(-2 ** 62, 2 ** 62, (6,), generator=gen),
        "int32": torch.randint(-2 ** 31, 2 ** 31 - 1, (2, 2), dtype=torch.int32, generator=gen),
        "int16": torch.randint(-2 ** 15, 2 ** 15 - 1, (5,), dtype=torch.int16, generator=gen),
        "int8": torch.randint(-128, 127, (7,), dtype=torch.int8, generator=gen),
        "uint8": torch.randint(0, 255, (3, 3), dtype=torch.uint8, generator=gen),
        "bool": torch.rand(9, generator=gen) > 0.5,
        "complex64": torch.randn(3, dtype=torch.complex64, generator=gen),
        "complex128": torch.randn(2, 2, dtype=torch.complex128, generator=gen),
        "scalar_float": torch.tensor(3.25),
        "scalar_int": torch.tensor(-7),
        "scalar_bool": torch.tensor(True),
        "empty": torch.empty(0),
        "empty_2d": torch.zeros(3, 0, dtype=torch.int32),
        "transposed": torch.randn(4, 6, generator=gen).t(),
        "stepped": torch.arange(40, dtype=torch.float32)[1::3],
        "channels_last": torch.randn(2, 3, 4, 5, generator=gen).contiguous(memory_format=torch.channels_last),
        "shared_a": shared[8:24].view(4, 4),
        "shared_b": shared[40:],
        "parameter": nn.Parameter(torch.randn(2, 2, generator=gen)),
    }
    nested = [torch.ones(2, dtype=torch.int16), torch.full((3,), 0.5)]
    values = dict(tensors)
    values.update({
        "epoch": 12, "big": 2 ** 40, "negative": -3, "lr": 0.01, "flag": True, "nothing": None,
        "name": "detkit \u2713", "tags": {"a", "b"}, "pair": (1, "two"),
        "nested": [1, [2.5, "x", None], {"k": (3, 4)}, nested[0]],
        "inner": {"weight": nested[1], "note": "not at the top level"},
    })
    return values, tensors, nested


@dataclass
class Listing:
    """A file and what `detkit import FILE --list --json` must report about it."""
    path: Path
    container: str
    tensors: dict  # name -> TensorInfo
    entry: str = ""
    layout: str | None = None  # None: not checked (a dict that is not a state dict)
    module_class: str = ""
    class_names: tuple = ()
    imgsz: int = 0  # 0: the file records no training image size
    nested: tuple = ()  # TensorInfo of tensors inside nested containers, which may or may not be listed


@dataclass
class Import:
    """A file `detkit import` must turn into detkit's model, and the weights the detector gets to match it."""
    path: Path
    weights: dict
    args: tuple = ()
    reshaped: frozenset = frozenset()


def save(obj, path, **kwargs):
    torch.save(obj, path, **kwargs)
    return path


def write_fixtures(out):
    """Writes the checkpoint files into `out`. Returns (listings, imports, the detector, the Ultralytics-layout
    model holding its weights)."""
    detector = make_detector()
    state = detector.state_dict()
    fp32 = describe(state)
    half_weights = {k: v.half().float() if v.is_floating_point() else v for k, v in state.items()}
    names_args = ("--names", ",".join(NAMES), "--imgsz", str(IMGSZ))

    listings = [Listing(save(state, out / "sd.pt"), "zip", fp32, layout="state_dict"),
                Listing(save(state, out / "sd-legacy.pt", _use_new_zipfile_serialization=False), "legacy", fp32,
                        layout="state_dict")]
    for suffix, dtype in (("half", torch.float16), ("bf16", torch.bfloat16)):
        cast = with_float_dtype(state, dtype)
        listings.append(Listing(save(cast, out / f"sd-{suffix}.pt"), "zip", describe(cast), layout="state_dict"))
    ddp_state = nn.DataParallel(detector).state_dict()  # the `module.` keys DDP and DataParallel write
    listings.append(Listing(save(ddp_state, out / "ddp.pt"), "zip", fp32, layout="state_dict"))

    values, tensors, nested = mixed_values()
    nested_infos = tuple(tensor_info(t) for t in nested)
    for name, kwargs, container in (("mixed.pt", {}, "zip"),
                                    ("mixed-legacy.pt", {"_use_new_zipfile_serialization": False}, "legacy")):
        listings.append(Listing(save(values, out / name, **kwargs), container, describe(tensors), nested=nested_infos))

    train_args = {"task": "detect", "mode": "train", "model": "yolov8n.pt", "data": "bccd.yaml", "epochs": 30,
                  "batch": 16, "imgsz": IMGSZ, "device": None, "optimizer": "auto", "lr0": 0.01, "names": None}
    model = ultralytics_model(detector, dict(train_args))
    # A stripped checkpoint's form: the model itself, `args` a plain dict (Ultralytics' strip_optimizer also
    # halves it; left in fp32 here, the one dtype the other module tree does not cover).
    ultra_model = save(ultralytics_checkpoint(model, None, train_args), out / "ultra-model.pt")
    # A training checkpoint's form: the EMA in fp16, `args` Ultralytics' namespace type. Serialised to memory
    # and written as bytes as recent Ultralytics does, so its records sit under "archive/".
    ema = copy.deepcopy(model).half()
    ema.args = IterableSimpleNamespace(**train_args)
    buffer = io.BytesIO()
    torch.save(ultralytics_checkpoint(None, ema, train_args), buffer)
    ultra = out / "ultra.pt"
    ultra.write_bytes(buffer.getvalue())
    for path, m, entry in ((ultra_model, model, "model"), (ultra, ema, "ema")):
        parameters = {name for name, _ in m.named_parameters()}
        listings.append(Listing(path, "zip", describe(m.state_dict(), parameters), entry=entry, layout="module tree",
                                module_class=MODULE_CLASS, class_names=tuple(NAMES), imgsz=IMGSZ))

    imports = [Import(out / "sd.pt", state, names_args), Import(out / "sd-half.pt", half_weights, names_args),
               Import(out / "ddp.pt", state, names_args),
               Import(ultra_model, state, reshaped=frozenset({"bins"})),
               Import(ultra, half_weights, reshaped=frozenset({"bins"}))]
    return listings, imports, detector, model


def check_fixtures(listings, detector, model, image):
    """The fixtures are what the test claims: the files load back in torch as written, and the
    Ultralytics-layout model computes the detector's function."""
    problems = []
    for case in listings:
        # The fixtures pickle whole modules, as Ultralytics checkpoints do; torch 2.6 and later load only
        # tensors unless told otherwise (weights_only, accepted since 1.13). This test wrote them.
        loaded = torch.load(case.path, weights_only=False)
        if case.entry:
            module = loaded[case.entry]
            got = describe(module.state_dict(), {name for name, _ in module.named_parameters()})
        else:
            got = describe({k.removeprefix("module."): v for k, v in loaded.items() if isinstance(v, torch.Tensor)})
        if got != case.tensors:
            problems.append(f"{case.path.name}: torch.load does not give back the tensors written")
    want, got = head_outputs(detector, image), head_outputs(model, image)
    if not torch.allclose(want, got, rtol=0, atol=1e-5 * max(1.0, want.abs().max().item())):
        problems.append(f"the Ultralytics-layout model differs from the detector by {(want - got).abs().max():.3g}")
    return problems


def corrupt_copies(sd_path, out):
    """A copy of sd.pt cut to half its bytes, and one with a byte flipped in its largest storage record."""
    data = sd_path.read_bytes()
    truncated = out / "sd-truncated.pt"
    truncated.write_bytes(data[:len(data) // 2])
    with zipfile.ZipFile(sd_path) as z:
        record = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack_from("<HH", data, record.header_offset + 26)  # the local header's
    at = record.header_offset + 30 + name_len + extra_len + record.file_size // 2
    flipped_bytes = bytearray(data)
    flipped_bytes[at] ^= 0x5A
    flipped = out / "sd-flipped.pt"
    flipped.write_bytes(flipped_bytes)
    with zipfile.ZipFile(flipped) as z:
        if z.testzip() != record.filename:
            sys.exit(f"fixture: flipping byte {at} of sd.pt did not corrupt {record.filename}")
    return [truncated, flipped]


# -------------------------------------------------------------------------------------------- checks

class Failed(Exception):
    pass


def tail(text, lines=5):
    return " | ".join(text.strip().splitlines()[-lines:])


def run_json(command):
    r = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise Failed(f"exit {r.returncode}: {tail(r.stderr or r.stdout)}")
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError as e:
        raise Failed(f"output is not JSON ({e}): {r.stdout[:200]!r}") from None


def same_file(reported, path):
    try:
        return os.path.samefile(reported, path)
    except (OSError, TypeError):
        return False


def compare_fields(got, expected):
    return [f"{k}: {got.get(k)!r}, expected {v!r}" for k, v in expected.items() if got.get(k) != v]


def check_listing(detkit, case):
    got = run_json([detkit, "import", case.path, "--list", "--json"])
    problems = [] if same_file(got.get("file"), case.path) else [f"file: {got.get('file')!r}, expected {case.path}"]
    fields = {"container": case.container, "entry": case.entry, "module_class": case.module_class,
              "class_names": list(case.class_names), "imgsz": case.imgsz}
    if case.layout is not None:
        fields["layout"] = case.layout
    problems += compare_fields(got, fields)
    listed = {}
    for t in got.get("tensors", []):
        if t["name"] in listed:
            problems.append(f"{t['name']}: listed twice")
        listed[t["name"]] = TensorInfo(t["dtype"], tuple(t["shape"]), t["crc32"], t["parameter"])
    for name, want in case.tensors.items():
        if name not in listed:
            problems.append(f"{name}: missing")
        elif listed[name] != want:
            problems.append(f"{name}: {listed[name]}, expected {want}")
    nested = list(case.nested)
    for name in listed.keys() - case.tensors.keys():
        info = replace(listed[name], parameter=False)
        if info in nested:
            nested.remove(info)
        else:
            problems.append(f"{name}: listed but not in the file's {'state dict' if case.layout else 'dict'}")
    return problems, f"{len(listed)} tensors"


def check_import(detkit, forward_tool, case, image_path, image, out):
    stem = case.path.stem
    imported = out / f"{stem}-detkit.pt"
    got = run_json([detkit, "import", case.path, "--out", imported, "--json", *case.args])
    problems = compare_fields(got, {"model": MODEL, "classes": CLASSES, "class_names": NAMES, "imgsz": IMGSZ,
                                    "new": [], "unused": [], "reshaped": sorted(case.reshaped)})
    if not same_file(got.get("out"), imported):
        problems.append(f"out: {got.get('out')!r}, expected {imported}")
    loaded = set(got.get("loaded", [])) | set(got.get("reshaped", []))
    if loaded != case.weights.keys():
        problems.append(f"loaded: missing {sorted(case.weights.keys() - loaded)[:5]}, "
                        f"unknown {sorted(loaded - case.weights.keys())[:5]}")
    if problems:
        return problems, ""

    result = out / f"{stem}-forward.bin"
    r = subprocess.run([str(forward_tool), str(imported), str(HEIGHT), str(WIDTH), str(image_path), str(result)],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return [f"model_forward_tool exit {r.returncode}: {tail(r.stderr or r.stdout)}"], ""
    want = reference_outputs(case.weights, image)
    got_out = torch.from_numpy(np.fromfile(result, dtype="<f4").astype(np.float32))
    if got_out.numel() != want.numel():
        return [f"forward: {got_out.numel()} values, expected {want.numel()}"], ""
    scale = max(1.0, want.abs().max().item())
    diff = (got_out - want).abs().max().item()
    if not diff <= 1e-4 * scale:  # also catches NaN
        return [f"forward: max |difference| {diff:.3g} > 1e-4 * {scale:.3g}"], ""
    return [], f"forward max |diff| {diff:.2g} (max |ref| {scale:.3g})"


def check_rejected(detkit, path):
    r = subprocess.run([str(detkit), "import", str(path), "--list"], capture_output=True, text=True, timeout=600)
    problems = [] if r.returncode == EXIT_BAD_FILE else [f"exit {r.returncode}, expected {EXIT_BAD_FILE}"]
    errors = [line for line in (r.stderr + r.stdout).splitlines() if line.startswith("error:")]
    if not any(str(path) in line or path.name in line for line in errors):
        problems.append(f"no `error:` line naming the file: {tail(r.stderr or r.stdout)!r}")
    return problems, tail(errors[0], 1) if errors else ""


def tool(variable):
    path = os.environ.get(variable)
    if not path or not os.access(path, os.X_OK):
        sys.exit(f"{variable} must name an executable (got {path!r})")
    return path


def run_checks(name, checks):
    """Runs (label, check) pairs; each check returns (problems, detail) or raises Failed."""
    failed = 0
    for label, check in checks:
        try:
            problems, detail = check()
        except (Failed, subprocess.TimeoutExpired) as e:
            problems, detail = [str(e)], ""
        except (KeyError, TypeError, ValueError) as e:  # JSON without the fields or types expected
            problems, detail = [f"unexpected output: {e!r}"], ""
        failed += bool(problems)
        print(f"{name} {label}: {'FAIL' if problems else 'ok'}{f' ({detail})' if detail and not problems else ''}")
        for p in problems[:8]:
            print(f"    {p}")
        if len(problems) > 8:
            print(f"    ... and {len(problems) - 8} more")
    return len(checks) - failed, failed


def run(out, tools):
    """Writes the fixtures into `out` and checks them; then, given (detkit, model_forward_tool), checks detkit."""
    listings, imports, detector, model = write_fixtures(out)
    image = torch.rand(1, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(SEED + 2))
    image_path = out / "image.bin"
    image.numpy().astype("<f4").tofile(image_path)
    corrupt = corrupt_copies(out / "sd.pt", out)
    problems = check_fixtures(listings, detector, model, image)
    for p in problems:
        print(f"fixture: {p}")
    if problems or tools is None:
        verdict = "FAIL" if problems else "ok"
        print(f"{len(listings) + len(corrupt)} checkpoint files written to {out}, fixtures {verdict}")
        return 1 if problems else 0

    detkit, forward_tool = tools
    totals = [run_checks("list", [(c.path.name, lambda c=c: check_listing(detkit, c)) for c in listings]),
              run_checks("import", [(c.path.name, lambda c=c: check_import(detkit, forward_tool, c, image_path, image,
                                                                           out)) for c in imports]),
              run_checks("reject", [(p.name, lambda p=p: check_rejected(detkit, p)) for p in corrupt])]
    passed, failed = (sum(t[i] for t in totals) for i in (0, 1))
    print(f"{passed} passed, {failed} failed ({len(listings)} listings, {len(imports)} imports with forward "
          f"comparison, {len(corrupt)} damaged files; torch {torch.__version__})")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--fixtures-only", metavar="DIR", help="write the files into DIR, check them in torch, stop")
    a = ap.parse_args()
    if Path(ultralytics.__file__).resolve().parents[1] != FAKE_ULTRALYTICS:
        sys.exit(f"imported {ultralytics.__file__}, not the stand-in under {FAKE_ULTRALYTICS}")
    torch.set_num_threads(2)
    if a.fixtures_only:
        out = Path(a.fixtures_only)
        out.mkdir(parents=True, exist_ok=True)
        return run(out, None)
    tools = tool("DETKIT_BIN"), tool("MODEL_FORWARD_TOOL")
    with tempfile.TemporaryDirectory(prefix="detkit-import-") as tmp:
        return run(Path(tmp), tools)


if __name__ == "__main__":
    sys.exit(main())
