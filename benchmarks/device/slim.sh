#!/bin/bash
# The working tree plus .gpu/ is over the 64 MiB a device call carries. `out` moves the tracked files a device
# run never uses (forging and dense training need none of them) to $SLIM and prints what the call will carry;
# `back` puts them back (git status is then clean). Run from the repository root, here, around the calls.
# usage: bash benchmarks/device/slim.sh out|back
set -euo pipefail
SLIM=${SLIM:-/tmp/medforensics-slim}
FILES=(
  src/medforensics/assets/dcgan/mr.safetensors        # the MR and X-ray synthesisers
  src/medforensics/assets/dcgan/xray.safetensors
  src/medforensics/assets/detector2d/model.safetensors  # the 2-D synthesis detector
)
case "${1:-}" in
  out)
    for f in "${FILES[@]}"; do
      if [ -e "$SLIM/$f" ]; then echo "slim.sh: $SLIM/$f already there (run 'back' first)" >&2; exit 2; fi
    done
    for f in "${FILES[@]}"; do mkdir -p "$SLIM/$(dirname "$f")" && mv "$f" "$SLIM/$f"; done
    bytes() { { xargs -0 -r stat -c %s 2>/dev/null || true; } | awk '{ s += $1 } END { print s + 0 }'; }
    tracked=$(git ls-files -z | bytes)  # the moved files are gone: stat skips them
    untracked=$(git ls-files -z --others --exclude-standard | bytes)
    gpu=$(find .gpu -type f -print0 2>/dev/null | bytes)
    echo "moved ${#FILES[@]} files to $SLIM; a call carries about $(( (tracked + untracked + gpu) / 1048576 )) MiB of 64"
    ;;
  back)
    for f in "${FILES[@]}"; do
      if [ -e "$SLIM/$f" ]; then mv "$SLIM/$f" "$f"; fi
    done
    git status --short -- "${FILES[@]}"
    ;;
  *) echo "usage: bash benchmarks/device/slim.sh out|back" >&2; exit 2 ;;
esac
