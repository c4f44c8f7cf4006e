#!/bin/bash
# The bundled detector's GPU run: forge ds6 on the machine, then train the dense detector and its five
# leave-one-attack-out models at once; everything comes back as $OUT/result.tgz and $OUT/loao.tgz (also when
# time runs out). It installs nothing (--no-install): a dry run here (DEVICE=cpu) leaves the bundled assets alone.
# usage: [DENSE_ARGS=--zcorr] [FORGE_ARGS="--noise-z mixed"] [FORGE_JOBS=8] [LOAD_WORKERS=12/JOBS] bash benchmarks/device/run_dense.sh STEPS LOAO_STEPS BATCH WORKERS JOBS [PER_CLASS EVAL_EVERY HARD_EVERY]
# bundle12: bash benchmarks/device/run_dense.sh 3000 1500 16 2 6 150 300 200   (535 s on one H200)
set -euo pipefail
STEPS=$1; LOAO=$2; BATCH=$3; WORKERS=$4; JOBS=$5; PER=${6:-150}; EVAL=${7:-250}; HARD=${8:-100}
OUT=${OUT:-/tmp/out}; W=${WORK:-/tmp/gpuwork}; rm -rf "$W"; mkdir -p "$W" "$OUT"
t0=$(date +%s); stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
pack() {  # two archives, each well under the 16 MB a file may bring back: no resume state (last/)
  tar -czf "$OUT/result.tgz" --exclude=last -C "$W" bench/in-dist bench.log ds6/dataset.json ds6/manifest.csv \
    $(cd "$W" && ls bench | grep -v -e '^in-dist$' -e '^loao$' | sed 's|^|bench/|') 2>/dev/null || true
  tar -czf "$OUT/loao.tgz" --exclude=last -C "$W" bench/loao 2>/dev/null || true
  stamp "packed"; ls -la "$OUT"
}
trap pack EXIT
. benchmarks/device/setup.sh
stamp "set up"; nvidia-smi -L 2>/dev/null || true
python3 benchmarks/device/smoke.py --device "${DEVICE:-cuda}" ${DENSE_ARGS:-}  # seconds, before forging
python3 -m medforensics forge dataset --out "$W/ds6" --per-class "$PER" --seed 2 --jobs "${FORGE_JOBS:-8}" \
  --methods blob-inject,copy-move,ctgan-inject,ctgan-remove,inpaint-remove ${FORGE_ARGS:-} 2>&1 \
  | grep -v WARNING | tail -3
stamp "forged"
timeout $(( ${BUDGET:-560} - $(date +%s) + t0 )) python3 benchmarks/leaderboard/make_dense_detector.py \
  --data "$W/ds6" --work "$W/bench" --steps "$STEPS" --loao-steps "$LOAO" --batch-size "$BATCH" \
  --workers "$WORKERS" --jobs "$JOBS" --load-workers "${LOAD_WORKERS:-$(( (12 + JOBS - 1) / JOBS ))}" --device "${DEVICE:-cuda}" --threads 2 --eval-every "$EVAL" \
  --hard-every "$HARD" --no-install ${DENSE_ARGS:-} 2>&1 | grep --line-buffered -v WARNING | tee "$W/bench.log" | tail -40
stamp "trained"
