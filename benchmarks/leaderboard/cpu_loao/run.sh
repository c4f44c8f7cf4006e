#!/bin/bash
# The GPU plan's two calls (../../device/README.md, "Next GPU session") on this machine's CPU, over as many
# sessions as it takes: leave-one-attack-out counterparts for the control fine-tune of bundle14 (session 52's
# ft_ctl, 63 of 80 whole-series attacks localised against bundle14's 47), so that it can be ranked by
# unseen-attack AUC, the first criterion for the default detector. Every stage is idempotent: run it
# again and finished models are read, a model stopped after one of its evaluations resumes from there
# (make_dense_detector.py --reuse), and data sets already forged are kept.
#   call 1: five LOAO models from random weights, 1250 steps of 16 (bundle13's LOAO recipe), on ds6 forged
#           with the volume noise plane (the forge before session 41), as the GPU plan's call 1;
#   call 2: ft_ctl's recipe (600 steps of 8, lr 5e-4, 400 mined items, bundle14's split) on the mixed-noise
#           ds6, for the in-distribution model (from bundle14) and each LOAO model (from its call-1 namesake);
#   after:  call 1's LOAO models tested on call 2's data (the lineage without the mixed fine-tune).
# usage: bash benchmarks/leaderboard/cpu_loao/run.sh [call1|call2|after|all]   (env W: work folder)
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
  "$PY" benchmarks/leaderboard/make_dense_detector.py --data "$W/ds6m" --work "$W/held_out_call1" \
    --test-held-out "$W/call1" --batch-size 8 "${COMMON[@]}" | tail -12
  stamp "call 1's models tested on call 2's data"
fi
