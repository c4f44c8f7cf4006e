"""The duplicated-region check's margins (``scan.clones``): look-alike match groups in authentic CTs against
the shared area of real clone-stamp removals, and how much fresh noise over a copy the check tolerates.

    python benchmarks/clone_margins.py [--extra-ct DIR ...] [--seeds 1,2,3,4,5,6] [--fresh 0.25,0.5,0.75]
        [--out FILE.md]

Authentic: every CT of ``forge.dataset_sources.auto_sources`` (and ``--extra-ct`` folders) as stored and
flipped left-right and top-bottom, searched with the rule relaxed (2 matches, mean correlation >= 0.85, any
shared area), so the groups the real rule turns down are seen. Removals: ``clone-remove`` of each CT's
annotated nodule, once per seed, searched the same way (the group with an end within 10 mm). Fresh noise:
the same removals on CTs with a nodule, with in-plane correlated noise at a share of the lung's in-plane
level added inside the forged region, searched with the real rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

RELAXED = {"MIN_MATCHES": 2, "CLONE_CORRELATION": 0.85, "MIN_AGREE_MM2": 0.0}


def _groups(clones: Any, array: Any, spacing: Any, relaxed: bool) -> list[Any]:
    """``find_clones`` with the module's rule, or the relaxed one (restored afterwards)."""
    saved = {k: getattr(clones, k) for k in RELAXED}
    try:
        if relaxed:
            for k, v in RELAXED.items():
                setattr(clones, k, v)
        return list(clones.find_clones(array, spacing))
    finally:
        for k, v in saved.items():
            setattr(clones, k, v)


def _passes(clones: Any, c: Any) -> bool:
    return bool(c.correlation >= clones.CLONE_CORRELATION and c.agreeing_mm2 >= clones.MIN_AGREE_MM2)


def main() -> None:
    from clone_check import emit, near_site
    from scan_sources import extra_sources

    from medforensics.forge import cubes
    from medforensics.forge.base import run_attack
    from medforensics.forge.dataset_sources import auto_sources
    from medforensics.scan import clones

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra-ct", type=Path, action="append", default=[])
    ap.add_argument("--seeds", default="1,2,3,4,5,6")
    ap.add_argument("--fresh", default="0.25,0.5,0.75")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    shares = [float(s) for s in args.fresh.split(",") if s]
    rule = (
        f"{clones.MIN_MATCHES} matches, mean >= {clones.CLONE_CORRELATION:g}, "
        f">= {clones.MIN_AGREE_MM2:g} mm^2 shared"
    )
    md = [
        f"`benchmarks/clone_margins.py`; rule: {rule}. Groups as (matches, mean correlation, mm^2 shared).",
        "",
        "| CT | views | largest look-alike group | best-correlated look-alike group "
        "| groups meeting the rule "
        "| removals: shared area of the group found (relaxed) | found by the rule | "
        + " | ".join(f"fresh noise {s:g}" for s in shares)
        + " |",
        "| --- " * (7 + len(shares)) + "|",
    ]

    def fmt(c: Any) -> str:
        return f"({c.matches}, {c.correlation:.3f}, {c.agreeing_mm2:.0f})" if c is not None else "-"

    for src in auto_sources() + extra_sources(args.extra_ct):
        vol = src.volume
        vol.metadata.setdefault("nodules", src.nodules)
        arr = np.asarray(vol.array)
        alike: list[Any] = []
        for view in (arr, arr[:, :, ::-1], arr[:, ::-1]):
            alike += _groups(clones, np.ascontiguousarray(view), vol.spacing, relaxed=True)
        largest = max(alike, key=lambda c: c.agreeing_mm2, default=None)
        best = max(alike, key=lambda c: c.correlation, default=None)
        meeting = sum(_passes(clones, c) for c in alike)
        areas, found, fresh = [], 0, [0] * len(shares)
        for seed in seeds if src.nodules else []:
            centre = np.asarray([round(float(v)) for v in src.nodules[0].center_voxel])
            forged, mask, _rec = run_attack("clone-remove", vol, seed=seed, center=tuple(centre))
            sp = np.asarray(forged.spacing)
            hit = near_site(_groups(clones, forged.array, forged.spacing, relaxed=True), centre, sp)
            areas.append(f"{hit[0].agreeing_mm2:.0f}" if hit else "0")
            found += bool(near_site(clones.find_clones(forged.array, forged.spacing), centre, sp))
            lung = cubes.noise_std(
                np.asarray(vol.array, np.float32)[max(0, centre[0] - 4) : centre[0] + 5], inplane=True
            )
            box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
            for k, share in enumerate(shares):
                noisy = np.array(forged.array, np.float32)
                field = cubes.noise_field(
                    noisy[box].shape, share * lung, 0.0, np.random.default_rng(seed), inplane=True
                )
                noisy[box] += np.where(mask[box], field, 0.0)
                fresh[k] += bool(near_site(clones.find_clones(noisy, forged.spacing), centre, sp))
        n = len(seeds) if src.nodules else 0
        row = (
            f"| {src.name} | 3 | {fmt(largest)} | {fmt(best)} | {meeting} | {', '.join(areas) or '-'} | "
            f"{f'{found}/{n}' if n else '-'} | " + " | ".join(f"{f}/{n}" if n else "-" for f in fresh) + " |"
        )
        md.append(row)
        print(row, flush=True)
    emit(md, args.out)


if __name__ == "__main__":
    main()
