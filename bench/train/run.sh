#!/usr/bin/env bash
# End-to-end CPU training throughput (img/s, data included, no evaluation): `detkit train` against the same
# model, loss, optimizer, schedule and augmentation recipe in Python (bench/train/peer.py, Debian's
# python3-torch), same dataset, same image size, batch, loader workers and intra-op threads. The two sides
# run alternately, ROUNDS times, so both see the same machine load; each run's figure is the mean img/s of
# its epochs after the first; the medians of each side's runs are compared (single runs vary by +-15 % on
# a shared 2-core machine), and the best runs too.
#
# usage: bench/train/run.sh [BUILD_DIR] [ROUNDS]
# env:   IMGSZ (320) BATCH (8) WORKERS (2) THREADS (2) EPOCHS (2) OPTIMIZER (sgd) TRAIN_IMAGES (128)
#        BCCD_ROUNDS (1; 0 skips BCCD) BCCD_EPOCHS (2) BCCD_IMGSZ (416) WORK (/tmp/detkit-bench-train)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-$HERE/../../build}
ROUNDS=${2:-2}
DETKIT=$BUILD/bin/detkit
PY=/usr/bin/python3
IMGSZ=${IMGSZ:-320} BATCH=${BATCH:-8} WORKERS=${WORKERS:-2} THREADS=${THREADS:-2} EPOCHS=${EPOCHS:-2}
OPTIMIZER=${OPTIMIZER:-sgd} TRAIN_IMAGES=${TRAIN_IMAGES:-128}
BCCD_ROUNDS=${BCCD_ROUNDS:-1} BCCD_EPOCHS=${BCCD_EPOCHS:-2} BCCD_IMGSZ=${BCCD_IMGSZ:-416}
BCCD=${BCCD_DIR:-$HERE/../../tests/data/bccd-trainval}
WORK=${WORK:-/tmp/detkit-bench-train}
mkdir -p "$WORK"
RESULTS=$WORK/results-$(date +%Y%m%d-%H%M%S).jsonl

load() { cut -d' ' -f1 /proc/loadavg; }

printf 'date: %s\n' "$(date -Is)"
printf 'machine: %s cores, %s, %s GiB RAM; load average %s\n' "$(nproc)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" \
  "$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'detkit: %s\n' "$("$DETKIT" version 2>/dev/null | head -3 | tr '\n' ' ')"
printf 'peer: %s\n' "$($PY -c 'import torch, torchvision, PIL; print("torch", torch.__version__, "torchvision", torchvision.__version__, "PIL", PIL.__version__)')"

# The synthetic YOLO dataset (deterministic: same seed, same files).
SYNTH=$WORK/synth-$TRAIN_IMAGES
[ -f "$SYNTH/data.yaml" ] || "$DETKIT" synth --out "$SYNTH" --format yolo --train "$TRAIN_IMAGES" --val 8 --classes 3 \
  --sizes 320x320,416x320,320x416 --seed 0 -q >&2
PARAMS=$("$DETKIT" model info --model yolo-n --classes 3 --imgsz "$IMGSZ" --json | $PY -c 'import json, sys; print(json.load(sys.stdin)["parameters"])')
printf 'model: yolo-n, 3 classes, %s parameters (peer checks it has the same)\n' "$PARAMS"

common=(--val-split '' --skip-check --threads "$THREADS" model=yolo-n batch="$BATCH" workers="$WORKERS"
        threads="$THREADS" device=cpu optimizer="$OPTIMIZER" augment.close_mosaic=0 eval_interval=1000)

side_detkit() {  # NAME DATA IMGSZ EPOCHS [extra detkit args]
  local name=$1 data=$2 size=$3 epochs=$4; shift 4
  local before; before=$(load)
  rm -rf "${WORK:?}/runs/$name"; mkdir -p "$WORK/runs"
  $PY "$HERE/bench.py" detkit "$DETKIT" "$WORK/runs/$name" -- "${common[@]}" "$@" data="$data" imgsz="$size" \
    epochs="$epochs" | $PY "$HERE/bench.py" tag "$DATASET" "$before" | tee -a "$RESULTS"
}
side_peer() {  # DATA IMGSZ EPOCHS [extra peer args]
  local data=$1 size=$2 epochs=$3; shift 3
  local before; before=$(load)
  $PY "$HERE/peer.py" "$data" "$@" --imgsz "$size" --batch "$BATCH" --workers "$WORKERS" --threads "$THREADS" \
    --epochs "$epochs" --optimizer "$OPTIMIZER" --check-params "$PARAMS" 2>/dev/null \
    | $PY "$HERE/bench.py" tag "$DATASET" "$before" | tee -a "$RESULTS"
}

DATASET="synth-yolo ${TRAIN_IMAGES} img, ${IMGSZ} px"
for round in $(seq 1 "$ROUNDS"); do
  printf '# %s, round %s\n' "$DATASET" "$round"
  side_detkit "synth-$round" "$SYNTH/data.yaml" "$IMGSZ" "$EPOCHS"
  side_peer "$SYNTH/data.yaml" "$IMGSZ" "$EPOCHS"
done

if [ "$BCCD_ROUNDS" -gt 0 ] && [ -d "$BCCD" ]; then
  DATASET="BCCD VOC train 205 img, ${BCCD_IMGSZ} px"
  for round in $(seq 1 "$BCCD_ROUNDS"); do
    printf '# %s, round %s\n' "$DATASET" "$round"
    side_detkit "bccd-$round" "$BCCD" "$BCCD_IMGSZ" "$BCCD_EPOCHS"
    side_peer "$BCCD" "$BCCD_IMGSZ" "$BCCD_EPOCHS" --format voc
  done
fi

printf '\nsettings: yolo-n, batch %s (nominal 64: %s-step accumulation), workers %s, threads %s, %s, default recipe ' \
  "$BATCH" "$(( (64 + BATCH / 2) / BATCH ))" "$WORKERS" "$THREADS" "$OPTIMIZER"
printf '(mosaic on every epoch), no validation; figure = mean img/s of epochs 2..N, median and best run\n'
$PY "$HERE/bench.py" table "$RESULTS"
printf 'load average at the end: %s; results: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" "$RESULTS"
