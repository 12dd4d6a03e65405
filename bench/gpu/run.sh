#!/usr/bin/env bash
# GPU training throughput (issue 19's benchmark; docs/benchmarks.md): for each model and precision, in one
# run on one machine,
#   model   the training step alone: `detkit model speed --channels-last --cudnn-benchmark` (forward, loss,
#           backward, clipping, SGD, EMA on one synthetic batch kept on the device; no data loading), with
#           the memory layout and cuDNN setting the trainer uses by default
#   detkit  `detkit train` end to end on a synthetic dataset (decoding, augmentation, copies, the step):
#           results.csv's images per second of the epochs after the first, with detkit's defaults (cache:
#           auto keeps this small dataset's decoded images in RAM)
#   peer    the same model, loss, optimizer and augmentation recipe in this machine's Python torch
#           (bench/train/peer.py --device --amp), same dataset, batch and loader workers, and the same
#           channels-last layout and cuDNN benchmark setting, so the ratio compares implementations
# and the ratios the issue asks for: detkit / model (is the data pipeline the bottleneck?), detkit / peer,
# and bf16 / fp32 end to end.
#
#   bench/gpu/run.sh BUILD_DIR
# env: DEVICE (cuda) MODELS ("yolo-n yolo-s") PRECISIONS ("fp32 bf16") IMGSZ (640) BATCH (16) WORKERS (8)
#      TRAIN_IMAGES (256) EPOCHS (3) STEPS (30) PYTHON (python3) OUT (/tmp/detkit-bench-gpu)
# On the CPU (DEVICE=cpu, small IMGSZ) it checks that the script and its tools work; bf16 then means the
# CPU's bf16 autocast for the model step and the peer (detkit's trainer does not autocast on the CPU).
# Writes OUT/summary.json and OUT/summary.md; a side that fails is recorded with its error, not fatal.
set -uo pipefail
build=${1:?usage: bench/gpu/run.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
detkit=$(cd "$build" && pwd)/bin/detkit
DEVICE=${DEVICE:-cuda} MODELS=${MODELS:-"yolo-n yolo-s"} PRECISIONS=${PRECISIONS:-"fp32 bf16"}
IMGSZ=${IMGSZ:-640} BATCH=${BATCH:-16} WORKERS=${WORKERS:-8} TRAIN_IMAGES=${TRAIN_IMAGES:-256}
EPOCHS=${EPOCHS:-3} STEPS=${STEPS:-30} PYTHON=${PYTHON:-python3}
out=${OUT:-/tmp/detkit-bench-gpu}
mkdir -p "$out"
cd "$out" || exit 1
rm -rf runs results.jsonl
log() { printf '== %s\n' "$*" >&2; }

# The dataset: square images at the training size (letterboxing does no work), 3 classes.
if [[ ! -f data/data.yaml || "$(cat data/.spec 2>/dev/null)" != "$TRAIN_IMAGES $IMGSZ" ]]; then
  rm -rf data
  "$detkit" synth --out data --format yolo --train "$TRAIN_IMAGES" --val 0 --classes 3 --sizes "${IMGSZ}x${IMGSZ}" \
    --seed 1 -q 2>synth.log || { cat synth.log; exit 1; }
  echo "$TRAIN_IMAGES $IMGSZ" > data/.spec
fi

# record MODEL PRECISION SIDE ok|error FILE: one line of results.jsonl (FILE: the side's JSON output, or
# the log whose last lines are the error).
record() {
  $PYTHON - "$@" >> results.jsonl <<'PY'
import json, sys
model, precision, side, status, path = sys.argv[1:6]
row = {"model": model, "precision": precision, "side": side}
text = open(path).read()
if status == "error":
    row["error"] = "\n".join(text.strip().splitlines()[-3:])
elif side == "detkit":
    row["results_csv"] = path
else:
    row["result"] = json.loads(text.strip().splitlines()[-1] if side == "peer" else text)
print(json.dumps(row))
PY
}

# The loader alone (decoding, the recipe, collation on WORKERS threads; no training), decoding every epoch
# (cache none, as the peer does) and with detkit's default cache (auto: this dataset's decoded images are
# kept in RAM, so after the first epoch nothing is decoded): if it delivers fewer images per second than
# the step alone takes, the data pipeline bounds training.
for cache in none auto; do
  log "loader alone, cache $cache"
  if "$(dirname "$detkit")/detkit_bench_loader" --workers "$WORKERS" --imgsz "$IMGSZ" --batch "$BATCH" --epochs 2 \
       --trials 1 --cache "$cache" data/data.yaml train > "loader-$cache.json" 2> "loader-$cache.log"; then
    record - - "loader_$cache" ok "loader-$cache.json"
  else
    record - - "loader_$cache" error "loader-$cache.log"
  fi
done

for model in $MODELS; do
  for precision in $PRECISIONS; do
    amp_flag=() amp_cfg=false peer_amp=none
    if [[ "$precision" == bf16 ]]; then amp_flag=(--amp) amp_cfg=true peer_amp=bf16; fi

    log "$model $precision: model step alone"
    if "$detkit" model speed --model "$model" --classes 3 --imgsz "$IMGSZ" --batch "$BATCH" --steps "$STEPS" \
         --warmup 5 --device "$DEVICE" --channels-last --cudnn-benchmark "${amp_flag[@]}" --json > "model-$model-$precision.json" 2> "model-$model-$precision.log"; then
      record "$model" "$precision" model ok "model-$model-$precision.json"
    else
      record "$model" "$precision" model error "model-$model-$precision.log"
    fi

    log "$model $precision: detkit train"
    name="$model-$precision"
    if "$detkit" train data=data/data.yaml model="$model" imgsz="$IMGSZ" batch="$BATCH" nominal_batch="$BATCH" \
         epochs="$EPOCHS" amp="$amp_cfg" device="$DEVICE" workers="$WORKERS" warmup_epochs=0 project="$out/runs" \
         name="$name" --val-split "" --skip-check > "train-$name.out" 2> "train-$name.log"; then
      record "$model" "$precision" detkit ok "$out/runs/$name/results.csv"
    else
      record "$model" "$precision" detkit error "train-$name.log"
    fi

    log "$model $precision: Python peer"
    if $PYTHON "$root/bench/train/peer.py" data/data.yaml --model "$model" --imgsz "$IMGSZ" --batch "$BATCH" \
         --nominal-batch "$BATCH" --epochs "$EPOCHS" --workers "$WORKERS" --warmup-epochs 0 --device "$DEVICE" \
         --amp "$peer_amp" --channels-last --cudnn-benchmark --threads "$(nproc)" \
         > "peer-$name.json" 2> "peer-$name.log"; then
      record "$model" "$precision" peer ok "peer-$name.json"
    else
      record "$model" "$precision" peer error "peer-$name.log"
    fi
  done
done

$PYTHON "$root/bench/gpu/summarize.py" results.jsonl "$DEVICE" "$IMGSZ" "$BATCH" > summary.md
cat summary.md
