#!/usr/bin/env bash
# ONNX export on a trained BCCD model (issue 15's benchmark; docs/benchmarks.md).
#
#   bench/export/run.sh BUILD_DIR [MINUTES]
#
# 1. Trains yolo-n on BCCD's train split (tests/data/bccd-trainval) at 320 px for MINUTES wall minutes, or
#    takes MODEL=RUN_DIR when set.
# 2. mAP: `detkit eval` of the checkpoint and of its `detkit export` ONNX file (run by OpenCV's DNN module)
#    on the val split (87 images), COCO rules.
# 3. Same detections: the val images letterboxed to 320 px, run by LibTorch with detkit's postprocess
#    (tests/reference export_tool) and by onnxruntime on a `--nms` export (conf 0.25, IoU 0.7).
# 4. CPU speed on the same images and thread count (THREADS, default every core): onnxruntime on the ONNX
#    file, one image at a time (model and decoding only, input prepared beforehand), and `detkit detect`
#    end to end (JPEG decoding, letterbox, model, NMS, label files; --batch 1 and --batch 8) with the
#    checkpoint and with the ONNX file.
# Writes OUT/summary.json (OUT defaults to /tmp/detkit-bench-export). Run on an otherwise idle machine.
set -euo pipefail
build=${1:?usage: bench/export/run.sh BUILD_DIR [MINUTES]}
minutes=${2:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "$build" && pwd)/bin
detkit=$bin/detkit
bccd=${BCCD:-$root/tests/data/bccd-trainval}
out=${OUT:-/tmp/detkit-bench-export}
threads=${THREADS:-$(nproc)}
node_runner=$root/tests/reference/onnxruntime/run_onnx.js
python=/usr/bin/python3
mkdir -p "$out"
cd "$out"

model=${MODEL:-}
if [[ -z "$model" ]]; then
  echo "== training yolo-n on BCCD for $minutes min" >&2
  rm -rf runs/bccd
  "$detkit" train data="$bccd" model=yolo-n imgsz=320 epochs=300 batch=16 nominal_batch=16 optimizer=adamw \
    lr0=0.00143 momentum=0.9 warmup_bias_lr=0 warmup_epochs=3 augment.flipud=0.5 time_limit="$minutes" \
    project="$out/runs" name=bccd 2> train.log
  model=$out/runs/bccd
fi

echo "== export and mAP" >&2
"$detkit" export --model "$model" --out model.onnx --json > export.json
"$detkit" export --model "$model" --out model-nms.onnx --batch dynamic --nms --conf 0.25 --iou 0.7 --json > export-nms.json
"$detkit" eval --model "$model" --data "$bccd" --split val --json - --threads "$threads" > eval-checkpoint.json 2> /dev/null
"$detkit" eval --model model.onnx --data "$bccd" --split val --json - --threads "$threads" > eval-onnx.json 2> /dev/null

echo "== the val images, letterboxed" >&2
rm -rf val && mkdir -p val
while read -r id; do ln -s "$bccd/JPEGImages/$id.jpg" "val/$id.jpg"; done < "$bccd/ImageSets/Main/val.txt"
count=$("$python" - "$out" <<'PY'
import sys, pathlib
import numpy as np
from PIL import Image
out = pathlib.Path(sys.argv[1])
size, images = 320, []
for f in sorted((out / "val").iterdir()):
    im = Image.open(f).convert("RGB")
    scale = size / max(im.size)
    w, h = round(im.width * scale), round(im.height * scale)
    canvas = np.full((size, size, 3), 114, np.uint8)
    x, y = (size - w) // 2, (size - h) // 2
    canvas[y:y + h, x:x + w] = np.asarray(im.resize((w, h), Image.BILINEAR))
    images.append(canvas.transpose(2, 0, 1).astype(np.float32) / 255)
np.stack(images).tofile(out / "val320.bin")
print(len(images))
PY
)

echo "== same detections: LibTorch vs onnxruntime --nms ($count images)" >&2
checkpoint=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"]["detkit.checkpoint"])' export.json)
"$bin/export_tool" forward "$checkpoint" "$count" 320 val320.bin libtorch.bin 0.25 0.7 > libtorch-detections.json
node "$node_runner" model-nms.onnx val320.bin "$count" 320 ort-nms.bin "$threads" > ort-nms.json

echo "== speed ($threads threads)" >&2
node "$node_runner" --bench model.onnx val320.bin "$count" 320 "$threads" 3 > ort-bench.json
for variant in checkpoint:"$model" onnx:model.onnx; do
  name=${variant%%:*} what=${variant#*:}
  for batch in 1 8; do
    "$detkit" detect --model "$what" --source val --out "detect-$name-$batch" --batch "$batch" --no-images \
      --threads "$threads" --json > "detect-$name-$batch.json" 2> /dev/null
  done
done

"$python" - "$out" "$count" "$threads" <<'PY'
import json, sys, pathlib
import numpy as np
out, count, threads = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
load = lambda name: json.loads((out / name).read_text())
pt, onnx = load("eval-checkpoint.json")["stats"], load("eval-onnx.json")["stats"]
want = np.array(load("libtorch-detections.json")["detections"], np.float64).reshape(-1, 7)
flat, at = np.fromfile(out / "ort-nms.bin", np.float32).astype(np.float64), 0
for o in load("ort-nms.json")["outputs"]:  # boxes, scores, then detections
    n = int(np.prod(o["dims"]))
    if o["name"] == "detections":
        got = flat[at:at + n].reshape(-1, 7)
    at += n
order = lambda d: d[np.lexsort((d[:, 1], -d[:, 5], d[:, 6], d[:, 0]))]
same_count = len(got) == len(want)
summary = {
    "val_map50_95": {"checkpoint": pt["AP"], "onnx_opencv": onnx["AP"], "difference": abs(pt["AP"] - onnx["AP"])},
    "val_map50": {"checkpoint": pt["AP50"], "onnx_opencv": onnx["AP50"], "difference": abs(pt["AP50"] - onnx["AP50"])},
    "detections": {"libtorch": len(want), "onnxruntime_nms": len(got)},
    "export_verification": load("export.json")["max_rel_diff"],
    "threads": threads, "images": count,
    "onnxruntime_images_per_second": load("ort-bench.json")["images_per_second"],
    "onnxruntime_version": load("ort-bench.json")["onnxruntime"],
}
if same_count:
    g, w = order(got), order(want)
    summary["detections"].update({
        "same_images_and_classes": bool(np.array_equal(g[:, [0, 6]], w[:, [0, 6]])),
        "max_box_difference_px": float(np.abs(g[:, 1:5] - w[:, 1:5]).max()) if len(g) else 0.0,
        "max_score_difference": float(np.abs(g[:, 5] - w[:, 5]).max()) if len(g) else 0.0})
for name in ("checkpoint", "onnx"):
    for batch in (1, 8):
        summary[f"detect_{name}_batch{batch}_images_per_second"] = load(f"detect-{name}-{batch}.json")["images_per_second"]
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PY
