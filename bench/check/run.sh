#!/usr/bin/env bash
# Benchmark: `detkit check` of a 10,000-image synthetic COCO dataset (annotations, image headers, content
# hashes). The target is 10 s on the 2-core development machine. Not a timed test: it prints the
# figure for docs/benchmarks.md.
#   bench/check/run.sh [BUILD_DIR] [WORK_DIR]
set -euo pipefail
BUILD_DIR=${1:-build}
WORK=${2:-/tmp/detkit-bench-check}
DETKIT="$BUILD_DIR/bin/detkit"
DATA="$WORK/synth-10k"
if [[ ! -f "$DATA/synth.json" ]]; then
  mkdir -p "$WORK"
  echo "generating $DATA (10,000 images, once)" >&2
  "$DETKIT" synth --out "$DATA" --train 9000 --val 1000 --seed 0 -q > /dev/null
fi
# Warm the page cache once, as a second check of the same data would find it, then time three runs.
"$DETKIT" check "$DATA" -q > /dev/null || true
best_ms=0
for run in 1 2 3; do
  start=$(date +%s%N)
  "$DETKIT" check "$DATA" -q --json "$WORK/check.json" > /dev/null || true
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "run $run: $ms ms" >&2
  if (( best_ms == 0 || ms < best_ms )); then best_ms=$ms; fi
done
best=$(printf '%d.%03d' $((best_ms / 1000)) $((best_ms % 1000)))
images=$(python3 -c "import json; print(json.load(open('$WORK/check.json'))['stats']['images'])")
echo "detkit check, $images images (COCO, synthetic): best of 3 = $best s on $(nproc) cores"
