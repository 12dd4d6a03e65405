"""`detkit export` files run by independent runtimes give detkit's own outputs.

For yolo-n, yolo-s and yolo-m (and yolo-n with the stride-4 level), each with seeded random weights and
perturbed BatchNorm statistics (export_tool make), exported at two sizes with `--raw`:
  * Debian's python3-onnx `onnx.checker.check_model(full_check=True)` accepts the file;
  * onnxruntime (npm onnxruntime-node, tests/reference/onnxruntime) and OpenCV's DNN module (export_tool
    opencv) give LibTorch's boxes, scores and every level's raw head outputs (export_tool forward) within
    1e-4, relative to max(1, |value|);
  * exported again with `--nms`, onnxruntime's detections are the same boxes, scores and classes as detkit's
    own postprocess (per-class NMS) at the same thresholds, on the same pre-NMS outputs. (With random weights
    the top scores tie to 1e-7, so NMS's choice between tied boxes cannot be compared across runtimes; the
    same detections from LibTorch and from the ONNX file on a trained model are checked by the integration
    test `cli.Export` through OpenCV and by bench/export on the BCCD model through onnxruntime.)
Also: a dynamic-batch file at batch 3, every opset from 13 to 17, a float16 file (checker; onnxruntime within
float16 tolerance), and the TorchScript file loaded by python3-torch's `torch.jit.load` (outputs within 1e-4,
metadata in its extra file). Run by CTest with DETKIT_BIN and EXPORT_TOOL set.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
import onnx
import torch

HERE = Path(__file__).resolve().parent
RUN_ONNX = HERE / "onnxruntime" / "run_onnx.js"
DETKIT = os.environ.get("DETKIT_BIN", "")
TOOL = os.environ.get("EXPORT_TOOL", "")
NODE = os.environ.get("NODE", "node")
TOLERANCE = 1e-4
BATCH = 2
IOU = 0.6


def run(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p.stdout


def max_rel_diff(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float((np.abs(got - want) / np.maximum(1.0, np.abs(want))).max()) if got.size else 0.0


class Case:
    """One random detector in a temporary directory, with LibTorch's outputs on a fixed input."""

    def __init__(self, tmp, scale, classes, size, seed, stride4=False, batch=BATCH, checkpoint=None, images=None):
        self.tmp, self.scale, self.classes, self.size, self.batch = Path(tmp), scale, classes, size, batch
        self.name = f"{scale}{'-p2' if stride4 else ''}-{size}{'-trained' if checkpoint else ''}"
        self.checkpoint = checkpoint or self.tmp / f"{self.name}.pt"
        if not checkpoint:
            run([TOOL, "make", scale, classes, size, seed, self.checkpoint] + (["stride4"] if stride4 else []))
        self.strides = [4, 8, 16, 32] if stride4 else [8, 16, 32]
        self.anchors = sum((size // s) ** 2 for s in self.strides)
        self.input = images if images is not None else structured_input(np.random.default_rng(seed), batch, size)
        self.input_file = self.tmp / f"{self.name}.input.bin"
        self.input.tofile(self.input_file)
        self.reference = self.libtorch()

    def layout(self):
        b, a, c, s = self.batch, self.anchors, self.classes, self.size
        shapes = [("boxes", (b, a, 4)), ("scores", (b, a, c))]
        for stride in self.strides:
            shapes += [(f"box_s{stride}", (b, 64, s // stride, s // stride)), (f"cls_s{stride}", (b, c, s // stride, s // stride))]
        return shapes

    def split(self, flat, shapes):
        out, at = {}, 0
        for name, shape in shapes:
            n = int(np.prod(shape))
            out[name] = flat[at:at + n].reshape(shape)
            at += n
        assert at == flat.size, f"{flat.size} values, the layout has {at}"
        return out

    def libtorch(self, conf=0.5):
        out = self.tmp / f"{self.name}.libtorch.bin"
        printed = run([TOOL, "forward", self.checkpoint, self.batch, self.size, self.input_file, out, conf, IOU])
        self.detections = np.array(json.loads(printed)["detections"], dtype=np.float64).reshape(-1, 7)
        return self.split(np.fromfile(out, dtype=np.float32), self.layout())

    def export(self, *extra, out=None):
        out = out or self.tmp / f"{self.name}.onnx"
        report = json.loads(run([DETKIT, "export", "--model", self.checkpoint, "--imgsz", self.size, "--out", out, "--json", *extra]))
        return Path(out), report

    def onnxruntime(self, file, batch=None):
        out = self.tmp / "ort.bin"
        printed = json.loads(run([NODE, RUN_ONNX, file, self.input_file, batch or self.batch, self.size, out, 2]))
        flat = np.fromfile(out, dtype=np.float32)
        return self.split(flat, [(o["name"], tuple(o["dims"])) for o in printed["outputs"]])

    def opencv(self, file):
        out = self.tmp / "opencv.bin"
        run([TOOL, "opencv", file, self.batch, self.size, self.input_file, out])
        return self.split(np.fromfile(out, dtype=np.float32), self.layout())


def structured_input(rng, batch, size):
    """Images of random coloured rectangles over a gradient, with noise: varied enough that the outputs differ
    from anchor to anchor (on plain noise a random network's scores tie to 1e-7, and which of two tied boxes
    NMS keeps is then up to the runtime)."""
    images = np.empty((batch, 3, size, size), np.float32)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    for b in range(batch):
        images[b] = 0.4 * ramp[None, :, None] + 0.2 * ramp[None, None, :]
        for _ in range(24):
            x0, y0 = rng.integers(0, size - 8, 2)
            w, h = rng.integers(8, size // 2, 2)
            images[b, :, y0:y0 + h, x0:x0 + w] = rng.random(3, dtype=np.float32)[:, None, None]
        images[b] += 0.05 * rng.standard_normal((3, size, size), dtype=np.float32)
    return np.clip(images, 0, 1)


def check_onnx(test, file):
    model = onnx.load(str(file))
    onnx.checker.check_model(model, full_check=True)
    return model


@unittest.skipUnless(DETKIT and TOOL, "DETKIT_BIN and EXPORT_TOOL must be set (CTest sets them)")
class ExportReference(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="detkit-export-ref-")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def compare(self, got, want, what):
        for name, value in want.items():
            self.assertIn(name, got, f"{what}: no output {name}")
            diff = max_rel_diff(got[name], value)
            self.assertLessEqual(diff, TOLERANCE, f"{what}: output {name} differs from LibTorch's by {diff:.3g}")

    def same_detections(self, got, want, what):
        order = lambda d: d[np.lexsort((d[:, 1], -d[:, 5], d[:, 6], d[:, 0]))]
        got, want = order(np.asarray(got, np.float64).reshape(-1, 7)), order(want)
        self.assertEqual(len(got), len(want), f"{what}: {len(got)} detections, detkit keeps {len(want)}")
        self.assertTrue(np.array_equal(got[:, [0, 6]], want[:, [0, 6]]), f"{what}: images or classes differ")
        self.assertLessEqual(max_rel_diff(got[:, 1:6], want[:, 1:6]), TOLERANCE, f"{what}: boxes or scores differ")

    def test_models_and_sizes_agree_in_onnxruntime_and_opencv(self):
        cases = [("yolo-n", 3, 256, 11, False), ("yolo-n", 3, 320, 12, False), ("yolo-s", 5, 256, 13, False),
                 ("yolo-s", 5, 320, 14, False), ("yolo-m", 2, 256, 15, False), ("yolo-m", 2, 320, 16, False),
                 ("yolo-n", 3, 256, 17, True)]
        for scale, classes, size, seed, stride4 in cases:
            with self.subTest(model=scale, size=size, stride4=stride4):
                case = Case(self.tmp.name, scale, classes, size, seed, stride4)
                file, report = case.export("--batch", BATCH, "--raw")
                self.assertIn("OpenCV", report["verified_with"])
                self.assertLessEqual(report["max_rel_diff"], TOLERANCE)
                self.assertEqual(report["outputs"]["boxes"], f"float32[{BATCH},{case.anchors},4]")
                model = check_onnx(self, file)
                meta = {p.key: p.value for p in model.metadata_props}
                self.assertEqual(json.loads(meta["detkit.classes"]), [f"class{c}" for c in range(classes)])
                self.assertEqual(int(meta["detkit.imgsz"]), size)
                self.assertEqual(json.loads(meta["detkit.strides"]), case.strides)
                self.compare(case.onnxruntime(file), case.reference, f"{case.name} onnxruntime")
                opencv = case.opencv(file)
                self.compare(opencv, case.reference, f"{case.name} OpenCV DNN")

                # NMS in the graph: onnxruntime's detections are detkit's postprocess of the same boxes and
                # scores. Compared on onnxruntime's own pre-NMS outputs: a random network's top scores tie to
                # 1e-7, and which of two tied, overlapping boxes NMS keeps then hangs on the last bit of each
                # runtime's arithmetic (the outputs themselves were compared above).
                ort = case.onnxruntime(file)
                scores = np.sort(ort["scores"].ravel())[::-1]
                conf = float((scores[400] + scores[401]) / 2)  # between two scores, not on one
                nms_file, nms_report = case.export("--batch", BATCH, "--nms", "--conf", repr(conf), "--iou", IOU,
                                                   "--max-det", 100000, out=case.tmp / f"{case.name}.nms.onnx")
                check_onnx(self, nms_file)
                self.assertEqual(nms_report["operators"]["NonMaxSuppression"], 1)
                predictions = case.tmp / "ort-predictions.bin"
                np.concatenate([ort["boxes"].ravel(), ort["scores"].ravel()]).astype(np.float32).tofile(predictions)
                want = json.loads(run([TOOL, "nms", predictions, BATCH, case.anchors, classes, conf, IOU]))["detections"]
                self.assertGreater(len(want), 10)
                self.same_detections(case.onnxruntime(nms_file)["detections"], np.array(want).reshape(-1, 7), f"{case.name} --nms")

    def test_dynamic_batch_runs_any_batch(self):
        case = Case(self.tmp.name, "yolo-n", 4, 256, 21, batch=3)
        file, report = case.export("--batch", "dynamic")
        self.assertEqual(report["inputs"]["images"], "float32[batch,3,256,256]")
        check_onnx(self, file)
        got = case.onnxruntime(file)
        self.compare(got, {k: case.reference[k] for k in ("boxes", "scores")}, "dynamic batch 3 onnxruntime")

    def test_every_opset_is_accepted_and_runs(self):
        case = Case(self.tmp.name, "yolo-n", 2, 256, 22)
        for opset in range(13, 18):
            with self.subTest(opset=opset):
                file, report = case.export("--batch", BATCH, "--opset", opset, out=case.tmp / f"opset{opset}.onnx")
                model = check_onnx(self, file)
                self.assertEqual([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")], [opset])
                self.assertEqual(model.ir_version, 7 if opset <= 14 else 8)
                self.compare(case.onnxruntime(file), {k: case.reference[k] for k in ("boxes", "scores")}, f"opset {opset}")

    def test_float16_file_is_valid_and_close(self):
        case = Case(self.tmp.name, "yolo-n", 3, 256, 23)
        file, report = case.export("--batch", BATCH, "--half")
        self.assertEqual(report["inputs"]["images"], f"float16[{BATCH},3,256,256]")
        self.assertIn("float16", report["not_verified_because"])
        model = check_onnx(self, file)
        self.assertEqual(model.graph.input[0].type.tensor_type.elem_type, onnx.TensorProto.FLOAT16)
        got = case.onnxruntime(file)
        # float16 keeps ~3 decimal digits: scores absolutely, boxes (up to 256 px) relative to their size.
        self.assertLess(float(np.abs(got["scores"] - case.reference["scores"]).max()), 0.02)
        self.assertLess(float(np.abs(got["boxes"] - case.reference["boxes"]).max()), 2.0)
        # With --nms the detections stay float32 (NonMaxSuppression runs on float32 casts).
        nms_file, _ = case.export("--batch", BATCH, "--half", "--nms", out=case.tmp / "half-nms.onnx")
        nms_model = check_onnx(self, nms_file)
        self.assertEqual(nms_model.graph.output[-1].type.tensor_type.elem_type, onnx.TensorProto.FLOAT)

    def test_torchscript_runs_in_python_torch(self):
        case = Case(self.tmp.name, "yolo-s", 3, 256, 24)
        file, report = case.export("--format", "torchscript", "--batch", BATCH, out=case.tmp / "model.torchscript")
        self.assertEqual(report["verified_with"], "torch::jit::load")
        extra = {"detkit.json": ""}
        module = torch.jit.load(str(file), _extra_files=extra)
        meta = json.loads(extra["detkit.json"])
        self.assertEqual(json.loads(meta["detkit.classes"]), ["class0", "class1", "class2"])
        with torch.no_grad():
            boxes, scores = module(torch.from_numpy(case.input))
        self.compare({"boxes": boxes.numpy(), "scores": scores.numpy()},
                     {k: case.reference[k] for k in ("boxes", "scores")}, "torch.jit.load")


if __name__ == "__main__":
    unittest.main(verbosity=2)
