"""``scan --clone-region body`` against the default (lungs) on real CT volumes (session 48).

The CT duplicated-region check searches the lungs across slices. A clone stamp in soft tissue or bone (a liver
lesion hidden under liver copied from elsewhere on the slice) is outside that window. ``--clone-region body``
also searches every slice alone within the body, as a single CT slice is searched (``scan.image_clones``).
For each real CT ``scan`` can assess (``forge.dataset_sources.auto_sources`` and ``--extra-ct`` folders; the
others are listed as not assessed): the authentic series scanned both ways (verdict, seconds), then
``--seeds`` forgeries by ``forge``'s ``image-clone`` attack on the first ``--forged`` of them (a disc of one
slice copied within the body over another place of that slice) scanned both ways: is a duplicated-region
finding on the pasted disc, is it the top finding, and was the disc in the lungs.

    python benchmarks/clone_region.py [--seeds 6] [--forged 4] [--extra-ct DIR ...] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def _scan(volume: Any, det: Any, det2: Any, region: str) -> tuple[Any, float]:
    from medforensics.scan.pipeline import scan_volume

    det.clone_region = region
    t0 = time.perf_counter()
    res = scan_volume(volume, det, detector2d=det2)
    return res, time.perf_counter() - t0


def _on_disc(res: Any, params: dict[str, Any]) -> tuple[bool, bool]:
    """Whether a duplicated-region finding lies on the pasted disc, and whether the top finding does."""
    z, y, x = params["center"]
    r = params["radius_px"]

    def on(f: Any) -> bool:
        c = f.center_voxel
        return c is not None and c[0] == z and float(np.hypot(c[1] - y, c[2] - x)) <= r

    dup = [f for f in res.findings if "duplicated region" in f.description]
    return any(on(f) for f in dup), bool(res.findings) and on(res.findings[0])


def main() -> None:
    from image_clones import ct_sources

    from medforensics.forge.base import create_attack
    from medforensics.forge.lung import lung_mask
    from medforensics.scan.detector import Detector

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--forged", type=int, default=4, help="Forge on the first this many assessable CTs.")
    ap.add_argument("--extra-ct", type=Path, action="append", default=[])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    det, det2 = Detector.default(), Detector.default("detector2d")
    md = [
        "| authentic CT | shape | lungs: verdict, s | body: verdict, s | copies found slice by slice |",
        "| --- | --- | --- | --- | --- |",
    ]
    assessable = []
    for src in ct_sources(args.extra_ct):
        (a, ta), (b, tb) = _scan(src.volume, det, det2, "lungs"), _scan(src.volume, det, det2, "body")
        if b.error is not None:
            md.append(f"| {src.name} | {src.volume.shape} | not assessed: {b.error.split(':')[0]} | | |")
        else:
            assessable.append(src)
            md.append(
                f"| {src.name} | {src.volume.shape} | {a.verdict}, {ta:.2f} | {b.verdict}, {tb:.2f} | "
                f"{b.extra['slice_clones_found']} |"
            )
        print(md[-1], flush=True)
    md += [
        "",
        "| forged CT | seed | disc in the lungs | lungs: found, top, s | body: found, top, s |",
        "| --- | --- | --- | --- | --- |",
    ]
    attack = create_attack("image-clone")
    totals = {"lungs": [0, 0], "body": [0, 0]}
    n = in_lung = 0
    for src in assessable[: args.forged]:
        lung = lung_mask(src.volume)
        for seed in range(args.seeds):
            params = attack.sample_params(src.volume, np.random.default_rng(seed))
            forged = attack.apply(src.volume, params, seed)[0]
            z, y, x = params["center"]
            n, in_lung = n + 1, in_lung + bool(lung[z, y, x])
            cells = []
            for region in ("lungs", "body"):
                res, t = _scan(forged, det, det2, region)
                found, top = _on_disc(res, params)
                totals[region][0] += found
                totals[region][1] += top
                cells.append(f"{found}, {top}, {t:.2f}")
            md.append(f"| {src.name} | {seed} | {bool(lung[z, y, x])} | {' | '.join(cells)} |")
            print(md[-1], flush=True)
    md += [
        "",
        f"Of {n} forgeries ({in_lung} discs in the lungs): lungs found {totals['lungs'][0]} (top finding on "
        f"the disc {totals['lungs'][1]}), body found {totals['body'][0]} (top {totals['body'][1]}).",
    ]
    print(md[-1])
    if args.out is not None:
        args.out.write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
