#!/usr/bin/env bash
# `detkit audit` on planted label noise: how many of the label errors planted into BCCD does it rank on top?
#
#   bench/audit/run.sh            (no arguments; everything through the environment below)
#
# 1. plant_noise.py copies BCCD to WORK/noisy (images hard-linked) and plants, in the SPLIT images only,
#    RATE x (the split's boxes) changes of each kind: wrong_class, badly_placed (shifted 30-50 %), missing
#    (deleted), spurious (added on empty background); the answers go to WORK/noisy-planted.json, outside
#    the dataset.
# 2. FOLDS > 0 (out-of-fold, the default): `detkit config` writes the training recipe to
#    WORK/recipe/config.yaml, and
#      detkit audit WORK/noisy --model WORK/recipe --split SPLIT --folds FOLDS --seed SEED --out WORK/audit
#    trains FOLDS models on that recipe, each predicting the fold it did not see.
#    FOLDS=0 (in-sample): `detkit train` trains one model on the noisy SPLIT (run WORK/model), and
#      detkit audit WORK/noisy --model WORK/model --split SPLIT --out WORK/audit
#    audits with its best.pt predicting the images it learnt from.
# 3. score.py compares WORK/audit/audit.json with the planted changes: per kind, hits among the top k
#    suspects (k = number planted), precision@k, recall@k, @2k and over all suspects (docs: score.py --help).
# Everything printed goes to WORK/run.log as well; the scores to WORK/score.txt (plain and markdown) and
# WORK/score.json.
#
# env:  DETKIT (build/bin/detkit)  WORK (/tmp/detkit-bench-audit; emptied first)
#       BCCD (../shared/datasets/bccd-trainval beside the checkout, else tests/data/bccd-trainval)
#       SEED (1: the noise and the training seed)  RATE (0.05 per kind)  SPLIT (train)
#       FOLDS (2; 0: in-sample)  MODEL (yolo-n)  IMGSZ (320)  EPOCHS (100)
#       TIME (10: time_limit= minutes per trained model, 0: none; with epochs, fits the schedule into it)
#       RECIPE_ARGS (extra key=value for the recipe, e.g. "batch=16 optimizer=adamw")
#       AUDIT_ARGS (extra arguments for detkit audit, e.g. "--min-score 0.1 --crops 0 --device cpu")
#       AUDIT_JSON (WORK/audit/audit.json: where the audit writes it)
#
# Checked against the audit CLI as written so far (src/cli/cmd_audit.cpp, src/audit/audit_run.cpp; adjust if
# it changes):
#   - with --folds, --model DIR only needs DIR/config.yaml (the recipe; `--config FILE` would do as well);
#     the fold models train on the audited SPLIT's images only, without validation, and the recipe's data=
#     is replaced by DATASET; --seed is the fold assignment seed (SEED here too)
#   - without --folds, --model is a trained run (its weights predict) and key=value overrides are refused
#   - the audit writes OUT/audit.json (AUDIT_JSON overrides the path); a rerun with the same --out
#     continues, but this script empties WORK first
#   - audit.json boxes are detkit's pixels of the dataset as read ([xmin - 1, ymin - 1, xmax, ymax] for VOC),
#     the convention plant_noise.py writes planted.json in
# With FOLDS=2 TIME=10 training alone takes up to 20 minutes (time_limit applies to each fold's model).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PY:-/usr/bin/python3}
DETKIT=${DETKIT:-$ROOT/build/bin/detkit}
WORK=${WORK:-/tmp/detkit-bench-audit}
BCCD=${BCCD:-$ROOT/../shared/datasets/bccd-trainval}
[ -d "$BCCD/Annotations" ] || BCCD=$ROOT/tests/data/bccd-trainval
BCCD=$(cd "$BCCD" && pwd)
SEED=${SEED:-1} RATE=${RATE:-0.05} SPLIT=${SPLIT:-train}
FOLDS=${FOLDS:-2} MODEL=${MODEL:-yolo-n} IMGSZ=${IMGSZ:-320} EPOCHS=${EPOCHS:-100} TIME=${TIME:-10}
RECIPE_ARGS=${RECIPE_ARGS:-} AUDIT_ARGS=${AUDIT_ARGS:-}
AUDIT_JSON=${AUDIT_JSON:-$WORK/audit/audit.json}

[ -x "$DETKIT" ] || { echo "run.sh: no detkit at $DETKIT (set DETKIT)" >&2; exit 2; }
case "$WORK" in /|"$ROOT"|"$HOME") echo "run.sh: refusing WORK=$WORK" >&2; exit 2 ;; esac
rm -rf "$WORK" && mkdir -p "$WORK"
exec > >(tee -a "$WORK/run.log") 2>&1

echo "date: $(date -Is)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "detkit: $DETKIT ($("$DETKIT" version 2>/dev/null | head -1))"
echo "dataset: $BCCD; seed $SEED, rate $RATE per kind, split $SPLIT; folds $FOLDS, $MODEL, imgsz $IMGSZ," \
     "epochs $EPOCHS, time_limit $TIME min${RECIPE_ARGS:+, $RECIPE_ARGS}"

echo "== planting noise"
"$PY" "$HERE/plant_noise.py" "$BCCD" "$WORK/noisy" --seed "$SEED" --rate "$RATE" --splits "$SPLIT" \
  --planted "$WORK/noisy-planted.json"

# shellcheck disable=SC2206  # RECIPE_ARGS / AUDIT_ARGS are word lists on purpose
recipe=(data="$WORK/noisy" model="$MODEL" imgsz="$IMGSZ" epochs="$EPOCHS" time_limit="$TIME" seed="$SEED" $RECIPE_ARGS)
# shellcheck disable=SC2206
extra=($AUDIT_ARGS)
start=$(date +%s)
if [ "$FOLDS" -gt 0 ]; then
  echo "== recipe: WORK/recipe/config.yaml"
  "$DETKIT" config "${recipe[@]}" --out "$WORK/recipe" > /dev/null
  echo "== audit, out-of-fold ($FOLDS folds)"
  echo "+ detkit audit $WORK/noisy --model $WORK/recipe --split $SPLIT --folds $FOLDS --seed $SEED --out $WORK/audit ${extra[*]}"
  "$DETKIT" audit "$WORK/noisy" --model "$WORK/recipe" --split "$SPLIT" --folds "$FOLDS" --seed "$SEED" \
    --out "$WORK/audit" "${extra[@]}"
else
  echo "== training one model on the noisy $SPLIT split (in-sample audit)"
  "$DETKIT" train "${recipe[@]}" project="$WORK" name=model
  echo "== audit, in-sample"
  echo "+ detkit audit $WORK/noisy --model $WORK/model --split $SPLIT --out $WORK/audit ${extra[*]}"
  "$DETKIT" audit "$WORK/noisy" --model "$WORK/model" --split "$SPLIT" --out "$WORK/audit" "${extra[@]}"
fi
echo "audit took $(( $(date +%s) - start )) s"

[ -f "$AUDIT_JSON" ] || { echo "run.sh: no $AUDIT_JSON (set AUDIT_JSON to where the audit wrote it)" >&2; exit 1; }
echo "== score"
"$PY" "$HERE/score.py" "$AUDIT_JSON" "$WORK/noisy-planted.json" --markdown --json "$WORK/score.json" | tee "$WORK/score.txt"
