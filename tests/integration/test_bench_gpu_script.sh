#!/usr/bin/env bash
# bench/gpu/run.sh on the CPU at toy sizes: the GPU benchmark's script, `detkit model speed`, the trainer and
# the Python peer (--device/--amp) all run and the summary has every figure, so a lent GPU's few minutes are
# not lost to a broken script. Not a measurement.
set -euo pipefail
build=${1:?build dir}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
DEVICE=cpu IMGSZ=64 BATCH=8 TRAIN_IMAGES=24 EPOCHS=2 STEPS=2 WORKERS=1 MODELS=yolo-n PYTHON=/usr/bin/python3 \
  DETKIT_THREADS=2 OUT="$out" "$(dirname "$0")/../../bench/gpu/run.sh" "$build" > "$out/stdout" 2> "$out/stderr" ||
  { cat "$out/stderr"; exit 1; }
/usr/bin/python3 - "$out/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert not s["errors"], s["errors"]
assert [(r["model"], r["precision"]) for r in s["runs"]] == [("yolo-n", "fp32"), ("yolo-n", "bf16")], s["runs"]
for r in s["runs"]:
    for key in ("model_step", "detkit", "peer", "detkit_over_step", "detkit_over_peer"):
        assert isinstance(r[key], (int, float)) and r[key] > 0, (key, r)
    assert isinstance(r["detkit_data_wait_share"], float) and 0 <= r["detkit_data_wait_share"] <= 1, r
assert s["loader_alone"]["none"] > 0 and s["loader_alone"]["auto"] > 0, s
assert s["yolo-n_bf16_over_fp32_end_to_end"] > 0
print("bench/gpu/run.sh: every figure present")
PY
