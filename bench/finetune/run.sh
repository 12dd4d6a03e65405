#!/usr/bin/env bash
# Fine-tuning vs from scratch on BCCD, the same CPU time each (issue 16's benchmark; docs/benchmarks.md).
#
#   bench/finetune/run.sh BUILD_DIR [MINUTES]
#
# 1. Pre-trains a yolo-n on another dataset: `detkit synth` shapes (6 classes, cluttered backgrounds), for
#    MINUTES/2 wall minutes. No pretrained weights exist on this machine, and none are downloaded.
# 2. Trains BCCD (tests/data/bccd-trainval: 205 train, 87 val images) twice with the recipe `detkit advise`
#    gives, each for MINUTES wall minutes (time_limit, which fits the schedule into the time):
#      scratch:  from a fresh model
#      finetune: weights=the pre-trained model (class branch re-initialised: 6 classes there, 3 here), with
#                the fine-tuning lr0 `detkit advise --weights` gives
# 3. Prints each arm's best val mAP50-95 and mAP50 (COCO rules) and writes OUT/summary.json.
# Both arms use every core; MINUTES=15 on 2 cores is 30 CPU-minutes each. Run on an otherwise idle machine.
set -euo pipefail
build=${1:?usage: bench/finetune/run.sh BUILD_DIR [MINUTES]}
minutes=${2:-15}
root=$(cd "$(dirname "$0")/../.." && pwd)
detkit=$(cd "$build" && pwd)/bin/detkit
bccd=${BCCD:-$root/tests/data/bccd-trainval}
out=${OUT:-/tmp/detkit-bench-finetune}
rm -rf "$out" && mkdir -p "$out"
cd "$out"
recipe=(model=yolo-n imgsz=320 epochs=300 batch=16 nominal_batch=16 optimizer=adamw momentum=0.9 warmup_bias_lr=0
        augment.flipud=0.5 project="$out/runs")

echo "== pre-training on synthetic shapes for $((minutes / 2)) min" >&2
"$detkit" synth --out shapes --format yolo --seed 3 --train 600 --val 60 --classes 6 >/dev/null
"$detkit" train data=shapes/data.yaml "${recipe[@]}" lr0=0.00143 time_limit=$((minutes / 2)) name=pretrain 2> pretrain.log
"$detkit" import runs/pretrain --out pretrained.pt > import.txt

scratch_lr=$("$detkit" advise "$bccd" --model yolo-n --imgsz 320 --json - 2>/dev/null |
             python3 -c 'import json,sys; print(json.load(sys.stdin)["schedule"]["lr0"])')
finetune_lr=$("$detkit" advise "$bccd" --model yolo-n --imgsz 320 --weights pretrained.pt --json - 2>/dev/null |
              python3 -c 'import json,sys; print(json.load(sys.stdin)["schedule"]["lr0"])')

echo "== BCCD from scratch for $minutes min (lr0 $scratch_lr)" >&2
"$detkit" train data="$bccd" "${recipe[@]}" lr0="$scratch_lr" warmup_epochs=3 time_limit="$minutes" name=scratch 2> scratch.log
echo "== BCCD fine-tuned from the pre-trained model for $minutes min (lr0 $finetune_lr)" >&2
"$detkit" train data="$bccd" "${recipe[@]}" lr0="$finetune_lr" warmup_epochs=3 weights=pretrained.pt time_limit="$minutes" \
  name=finetune 2> finetune.log

python3 - "$out" "$minutes" "$scratch_lr" "$finetune_lr" <<'PY'
import json, sys, pathlib
out, minutes = pathlib.Path(sys.argv[1]), int(sys.argv[2])
summary = {"minutes": minutes, "lr0": {"scratch": float(sys.argv[3]), "finetune": float(sys.argv[4])}}
for arm in ("pretrain", "scratch", "finetune"):
    m = json.loads((out / "runs" / arm / "metrics.json").read_text())
    stats = m["best"]["stats"]
    summary[arm] = {"best_map50_95": stats["AP"], "best_map50": stats["AP50"], "best_epoch": m["best"]["epoch"],
                    "epochs": m["epochs_completed"], "optimizer_steps": m["optimizer_steps"], "seconds": m["seconds"]}
    print(f"{arm:9s} best mAP50-95 {summary[arm]['best_map50_95']:.3f}  mAP50 {summary[arm]['best_map50']:.3f}"
          f"  ({summary[arm]['epochs']} epochs)")
(out / "summary.json").write_text(json.dumps(summary, indent=2))
PY
