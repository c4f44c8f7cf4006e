#!/bin/bash
# The GPU plan's two calls (../../device/README.md, "Next GPU session") on this machine's CPU, over as many
# sessions as it takes: leave-one-attack-out counterparts for the control fine-tune of bundle14 (session 52's
# ft_ctl, 63 of 80 whole-series attacks localised against bundle14's 47), so that it can be ranked by
# unseen-attack AUC, the issue's first criterion for the default detector. Every stage is idempotent: run it
# again and finished models are read, a model stopped after one of its evaluations resumes from there
# (make_dense_detector.py --reuse), and data sets already forged are kept.
#   call 1: five LOAO models from random weights, 1250 steps of 16 (bundle13's LOAO recipe), on ds6 forged
#           with the volume noise plane (the forge before session 41), as the GPU plan's call 1;
#   call 2: ft_ctl's recipe (600 steps of 8, lr 5e-4, 400 mined items, bundle14's split) on the mixed-noise
#           ds6, for the in-distribution model (from bundle14) and each LOAO model (from its call-1 namesake);
#   after:  both calls' LOAO models tested on bundle14's data set (where its 0.753 was measured) and on call
#           2's; the candidate's in-distribution AUC on bundle14's data set.
# usage: bash benchmarks/leaderboard/cpu_loao/run.sh [call1|call2|after|all|status]   (env W: work folder)
# Measured on 2 cores (session 54, AMX bf16): 1.7 s a step of 16, about 37 min per call-1 model.
set -euo pipefail
STAGE=${1:-all}
W=${W:-/work/cpu_loao}
PY=${PY:-$PWD/.venv/bin/python}
S=(--split-of 93ad6a507f90=val --split-of 3bb5d67ab461=test --split-of 3ad2ceaeb677=train
   --split-of f255db4ba233=train)
COMMON=(--device cpu --threads 2 --jobs 1 --workers 0 --zcorr --linear-head --max-pixel-mm 1.0
        --lossy-codecs= --no-install --reuse "${S[@]}")
METHODS=blob-inject,copy-move,ctgan-inject,ctgan-remove,inpaint-remove
if [ "$STAGE" = status ]; then  # how far each model got: finished, or the step of its last resume point
  for d in "$W"/call1/loao/* "$W"/call2/in-dist "$W"/call2/loao/*; do
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
forge() {  # forge DIR NOISE_ARGS...: once (dataset.json is written last)
  local out=$1; shift
  if [ ! -f "$out/dataset.json" ]; then
    rm -rf "$out"
    "$PY" -m medforensics forge dataset --out "$out" --per-class 150 --seed 2 --jobs 2 --methods "$METHODS" "$@" \
      2>&1 | grep -v WARNING | tail -2
    stamp "forged $out"
  fi
}
if [ "$STAGE" = call1 ] || [ "$STAGE" = all ]; then
  forge "$W/ds6v" --noise-plane volume
  "$PY" benchmarks/leaderboard/make_dense_detector.py --data "$W/ds6v" --work "$W/call1" --loao-only \
    --steps 1 --loao-steps 1250 --batch-size 16 --eval-every 250 --hard-every 200 "${COMMON[@]}" | tail -12
  stamp "call 1 done"
fi
if [ "$STAGE" = call2 ] || [ "$STAGE" = all ]; then
  for m in ${METHODS//,/ }; do
    if [ ! -f "$W/call1/loao/$m/metrics.json" ]; then echo "run.sh: call 1 has not finished $m" >&2; exit 2; fi
  done
  forge "$W/ds6m" --noise-z mixed
  # the in-distribution model starts from bundle14, as ft_ctl did (--fine-tune takes WORK/in-dist)
  [ -d "$W/call1/in-dist" ] || cp -r src/medforensics/assets/detector "$W/call1/in-dist"
  "$PY" benchmarks/leaderboard/make_dense_detector.py --data "$W/ds6m" --work "$W/call2" --fine-tune "$W/call1" \
    --steps 600 --loao-steps 600 --batch-size 8 --eval-every 150 --hard-every 100 --hard-items 400 \
    --hard-negative 0.6 --lr 5e-4 "${COMMON[@]}" | tail -12
  stamp "call 2 done"
fi
if [ "$STAGE" = after ] || [ "$STAGE" = all ]; then
  # bundle14's own data set (session 11's ds6, where its unseen-attack mean 0.753 was measured): forged again
  # by a checkout before commit 3adc39f (session 54: bundle14 scores 0.972 on it, as stored, per method too)
  if [ ! -f "$W/ds6_b14/dataset.json" ]; then
    [ -d "$W/wt_3adc39f" ] || git worktree add -f "$W/wt_3adc39f" 3adc39f^
    (cd "$W/wt_3adc39f" && PYTHONPATH="$W/wt_3adc39f/src" "$PY" -m medforensics forge dataset --out "$W/ds6_b14" \
      --per-class 150 --seed 2 --methods "$METHODS" 2>&1 | grep -v WARNING | tail -2)
  fi
  # the lineage before (call 1) and after (call 2) the mixed-noise fine-tune; call 2's own benchmark already
  # tested its models on ds6m
  for run in call1:ds6_b14 call1:ds6m call2:ds6_b14; do
    lineage=${run%%:*}; data=${run#*:}
    "$PY" benchmarks/leaderboard/make_dense_detector.py --data "$W/$data" --work "$W/held_out_${lineage}_$data" \
      --test-held-out "$W/$lineage" "${COMMON[@]}" | tail -9
  done
  "$PY" benchmarks/leaderboard/cpu_loao/score_on.py --model "$W/call2/in-dist" --data "$W/ds6_b14" \
    --out "$W/call2_in-dist_on_ds6_b14"
  stamp "leave-one-attack-out models tested on bundle14's and call 2's data"
fi
