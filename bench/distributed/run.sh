#!/usr/bin/env bash
# Distributed data-parallel training on the CPU: 2 ranks against 1 process on this machine (issue 14's
# benchmark; docs/benchmarks.md).
#
#   bench/distributed/run.sh BUILD_DIR [EPOCHS]
#
# Trains yolo-n on BCCD's train split at 320 px with the same global batch of 8 images three ways:
#   one      1 process, batch 8, every core's thread
#   two      detkit train --nproc 2, batch 4 per rank (the launcher gives each rank cores/2 threads), the
#            gradients averaged bucket by bucket during backward (dist_overlap, the default)
#   two-after the same with dist_overlap=false (gradients averaged after backward)
#   two-sync the same with sync_bn=true (BatchNorm statistics over both ranks: 2 collectives per layer)
# EPOCHS epochs each (default 3) without validation; the rate is results.csv's images per second of the
# epochs after the first (warm), with the share of that time spent waiting for the gradients' average
# after backward, and the wall time is the whole command's. Writes OUT/summary.json (OUT
# defaults to /tmp/detkit-bench-distributed). Run on an otherwise idle machine.
set -euo pipefail
build=${1:?usage: bench/distributed/run.sh BUILD_DIR [EPOCHS]}
epochs=${2:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
detkit=$(cd "$build" && pwd)/bin/detkit
bccd=${BCCD:-$root/tests/data/bccd-trainval}
out=${OUT:-/tmp/detkit-bench-distributed}
mkdir -p "$out"
cd "$out"
rm -rf runs
common=(data="$bccd" model=yolo-n imgsz=320 epochs="$epochs" nominal_batch=8 seed=1 project="$out/runs"
        --val-split "" --skip-check)

run() {  # name, then extra arguments
  local name=$1
  shift
  echo "== $name" >&2
  local start end
  start=$(date +%s.%N)
  "$detkit" train "${common[@]}" name="$name" "$@" > "$name.out" 2> "$name.log"
  end=$(date +%s.%N)
  echo "$name $(echo "$end - $start" | bc)" >> wall.txt
}

rm -f wall.txt
run one batch=8
run two batch=4 --nproc 2
run two-after batch=4 dist_overlap=false --nproc 2
run two-sync batch=4 sync_bn=true --nproc 2

/usr/bin/python3 - "$out" "$(nproc)" <<'PY'
import csv, json, sys
out, cores = sys.argv[1], int(sys.argv[2])
wall = dict(line.split() for line in open(f"{out}/wall.txt"))
summary = {"cores": cores, "runs": {}}
for name in ("one", "two", "two-after", "two-sync"):
    rows = list(csv.DictReader(open(f"{out}/runs/{name}/results.csv")))
    warm = rows[1:] or rows
    rate = sum(float(r["images_per_second"]) for r in warm) / len(warm)
    wait = sum(float(r.get("gradient_wait_share") or 0) for r in warm) / len(warm)
    summary["runs"][name] = {"images_per_second": round(rate, 2), "wall_seconds": round(float(wall[name]), 1),
                             "gradient_wait_share": round(wait, 4),
                             "epochs": len(rows), "final_box_loss": float(rows[-1]["box_loss"])}
base = summary["runs"]["one"]["images_per_second"]
for name, r in summary["runs"].items():
    r["ratio_to_one_process"] = round(r["images_per_second"] / base, 3)
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
PY
