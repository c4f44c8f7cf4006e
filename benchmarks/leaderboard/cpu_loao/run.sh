#!/bin/bash
# Leave-one-attack-out (LOAO) counterparts for the control fine-tune of bundle14 (session 52's ft_ctl: 63 of
# 80 whole-series attacks localised against bundle14's 47), made on this machine's CPU over as many sessions
# as it takes (no GPU has been lent since session 43), so that it can be ranked by unseen-attack AUC, the
# issue's first criterion for the default detector. Each LOAO lineage repeats the candidate's own:
#   in-distribution: bundle13 (GPU, session 11) -> bundle14 (CPU fine-tune, session 12) -> ft_ctl (session 52)
#   LOAO model k:    call1/k                    -> b14/k                                 -> call2/k
#   call1: bundle13's LOAO recipe (1250 steps of 16 from random weights) on bundle14's own data set
#          (session 11's ds6, forged again by a checkout before commit 3adc39f);
#   b14:   bundle14's LOAO recipe (300 steps of 8, lr 5e-4, 400 mined items, 60 % hard patches) on it: the
#          mean unseen-attack AUC should come back near bundle14's 0.753, which checks the reconstruction;
#   call2: ft_ctl's recipe (600 steps of 8, bundle14's split) on the mixed-noise ds6, for the in-distribution
#          model (from bundle14: ft_ctl again) and each LOAO model (from its b14 namesake);
#   after: call 2's LOAO models and its in-distribution model tested on bundle14's data set, the same 174
#          test scans as bundle14's 0.753.
# Every stage is idempotent: finished models are read, a model stopped after one of its evaluations resumes
# from there (make_dense_detector.py --reuse), data sets already forged are kept.
# usage: bash benchmarks/leaderboard/cpu_loao/run.sh [call1|b14|call2|after|all|status]   (env W: work folder)
# Measured on 2 cores (session 54, AMX bf16): 1.7 s a step of 16, about 38 min per call-1 model.
set -euo pipefail
STAGE=${1:-all}
W=${W:-/work/cpu_loao}
PY=${PY:-$PWD/.venv/bin/python}
. "$(dirname "$0")/split.sh"  # S: bundle14's patient split
COMMON=(--device cpu --threads 2 --jobs 1 --workers 0 --zcorr --linear-head --max-pixel-mm 1.0
        --lossy-codecs= --no-install --reuse)
METHODS=blob-inject,copy-move,ctgan-inject,ctgan-remove,inpaint-remove
MAKE=benchmarks/leaderboard/make_dense_detector.py
if [ "$STAGE" = status ]; then  # how far each model got: finished, or the step of its last resume point
  for d in "$W"/call1/loao/* "$W"/b14/loao/* "$W"/call2/in-dist "$W"/call2/loao/*; do
    [ -d "$d" ] || continue
    if [ -f "$d/metrics.json" ]; then state=finished
    elif [ -f "$d/last/state.json" ]; then
      state="resume point at step $("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$d/last/state.json")"
    else state="started (no evaluation yet)"; fi
    echo "${d#"$W"/}: $state"
  done
  exit 0
fi
mkdir -p "$W"
t0=$(date +%s); stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
finished_all() {  # finished_all DIR: every LOAO model under DIR/loao finished, or exit 2
  for m in ${METHODS//,/ }; do
    if [ ! -f "$1/loao/$m/metrics.json" ]; then echo "run.sh: $1 has not finished $m" >&2; exit 2; fi
  done
}
if [ "$STAGE" = call1 ] || [ "$STAGE" = all ]; then
  # bundle14's data set: session 54 checked that bundle14 scores 0.972 on it, per method as stored
  if [ ! -f "$W/ds6_b14/dataset.json" ]; then
    [ -d "$W/wt_3adc39f" ] || git worktree add -f "$W/wt_3adc39f" 3adc39f^
    rm -rf "$W/ds6_b14"
    (cd "$W/wt_3adc39f" && PYTHONPATH="$W/wt_3adc39f/src" "$PY" -m medforensics forge dataset --out "$W/ds6_b14" \
      --per-class 150 --seed 2 --methods "$METHODS" 2>&1 | grep -v WARNING | tail -2)
    stamp "forged bundle14's data set"
  fi
  "$PY" $MAKE --data "$W/ds6_b14" --work "$W/call1" --loao-only --steps 1 --loao-steps 1250 --batch-size 16 \
    --eval-every 250 --hard-every 200 "${COMMON[@]}" | tail -9
  stamp "call 1 done"
fi
if [ "$STAGE" = b14 ] || [ "$STAGE" = all ]; then
  finished_all "$W/call1"
  "$PY" $MAKE --data "$W/ds6_b14" --work "$W/b14" --loao-only --fine-tune "$W/call1" --steps 1 --loao-steps 300 \
    --batch-size 8 --eval-every 150 --hard-every 100 --hard-items 400 --hard-negative 0.6 --lr 5e-4 \
    "${COMMON[@]}" | tail -9
  stamp "bundle14's LOAO recipe done (compare its unseen-attack mean with 0.753)"
fi
if [ "$STAGE" = call2 ] || [ "$STAGE" = all ]; then
  finished_all "$W/b14"
  if [ ! -f "$W/ds6m/dataset.json" ]; then  # byte for byte session 52's /tmp/s52/ds6m (checked in session 54)
    rm -rf "$W/ds6m"
    "$PY" -m medforensics forge dataset --out "$W/ds6m" --per-class 150 --seed 2 --jobs 2 --methods "$METHODS" \
      --noise-z mixed 2>&1 | grep -v WARNING | tail -2
  fi
  # the in-distribution model starts from bundle14, as ft_ctl did (--fine-tune takes WORK/in-dist)
  [ -d "$W/b14/in-dist" ] || cp -r src/medforensics/assets/detector "$W/b14/in-dist"
  "$PY" $MAKE --data "$W/ds6m" --work "$W/call2" --fine-tune "$W/b14" --steps 600 --loao-steps 600 \
    --batch-size 8 --eval-every 150 --hard-every 100 --hard-items 400 --hard-negative 0.6 --lr 5e-4 \
    "${COMMON[@]}" "${S[@]}" | tail -12
  stamp "call 2 done"
fi
if [ "$STAGE" = after ] || [ "$STAGE" = all ]; then
  finished_all "$W/call2"
  "$PY" $MAKE --data "$W/ds6_b14" --work "$W/held_out_call2_ds6_b14" --test-held-out "$W/call2" \
    "${COMMON[@]}" "${S[@]}" | tail -9
  "$PY" benchmarks/leaderboard/cpu_loao/score_on.py --model "$W/call2/in-dist" --data "$W/ds6_b14" \
    --out "$W/call2_in-dist_on_ds6_b14"
  stamp "call 2's models tested on bundle14's data set"
fi
