#!/bin/bash
# The whole-series figures of condition 2 of the README's decision rule, once `run.sh call2` has finished
# call2/in-dist: the candidate as trained (a) and recalibrated with --augmented (b), each on the main run's
# two draws, platipy's CT (an unseen scanner; benchmarks/data/fetch_extra_ct.py --out /tmp/extra-ct) and
# every augmentation of each source's authentic series once; then the table beside bundle14's stored draws.
# Idempotent (runs already written are kept). About 25 minutes on 2 cores.
# usage: bash benchmarks/leaderboard/cpu_loao/decide.sh   (env W: run.sh's work folder; EXTRA: platipy's folder)
set -euo pipefail
W=${W:-/work/cpu_loao}
EXTRA=${EXTRA:-/tmp/extra-ct/platipy}
PY=${PY:-$PWD/.venv/bin/python}
. "$(dirname "$0")/split.sh"  # S: bundle14's patient split
D=$W/decide
[ -f "$W/call2/in-dist/metrics.json" ] || { echo "decide.sh: $W/call2/in-dist has not finished" >&2; exit 2; }
[ -d "$EXTRA" ] || { echo "decide.sh: $EXTRA: no such folder (fetch_extra_ct.py)" >&2; exit 2; }
if [ ! -f "$W/call2_in-dist_aug/calibration_training.json" ]; then
  rm -rf "$W/call2_in-dist_aug"
  cp -r "$W/call2/in-dist" "$W/call2_in-dist_aug"
  "$PY" benchmarks/leaderboard/recalibrate_dense.py --model "$W/call2_in-dist_aug" --data "$W/ds6m" --augmented \
    "${S[@]}" > "$W/call2_in-dist_aug.log" 2>&1
fi
mkdir -p "$D"
for m in in-dist:"$W/call2/in-dist" aug:"$W/call2_in-dist_aug"; do
  name=${m%%:*} model=${m#*:}
  for s in 0 1; do
    [ -f "$D/${name}_main_s$s.json" ] || "$PY" benchmarks/scan_accuracy.py --model "$model" --per-method 2 \
      --augmented 5 --seed "$s" --out "$D" --stem "${name}_main_s$s" > /dev/null 2>&1
  done
  [ -f "$D/${name}_platipy.json" ] || "$PY" benchmarks/scan_accuracy.py --model "$model" --extra-ct "$EXTRA" \
    --only-extra --per-method 2 --augmented 8 --seed 0 --out "$D" --stem "${name}_platipy" > /dev/null 2>&1
  [ -f "$D/${name}_every.json" ] || "$PY" benchmarks/scan_accuracy.py --model "$model" --per-method 0 \
    --augmented 0 --every-augmentation --out "$D" --stem "${name}_every" > /dev/null 2>&1
done
B=benchmarks/scan_accuracy/session42
"$PY" benchmarks/scan_accuracy_table.py "$B/b14_indep_s0.json" "$B/b14_indep_s1.json" "$D"/in-dist_main_s[01].json \
  "$D"/aug_main_s[01].json --equal-fa 0 --out "$D/table.md"
"$PY" benchmarks/scan_accuracy_table.py "$B/b14_platipy.json" "$D"/*_platipy.json \
  benchmarks/leaderboard/cpu_loao/augmented_calibration/b14_every.json "$D"/*_every.json --out "$D/authentic.md"
