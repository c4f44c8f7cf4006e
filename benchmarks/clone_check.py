"""The duplicated-region check (``scan.clones``) on its own: clones found in authentic CTs and in clone-stamp
removals (``clone-remove``) of each, at a given match correlation.

    python benchmarks/clone_check.py [--extra-ct DIR ...] [--min-corr 0.8] [--seeds 1,2,3] [--out FILE.md]

Every source of ``forge.dataset_sources.auto_sources`` (and ``--extra-ct`` folders, as ``scan_accuracy.py``
reads them) is searched as it is; each with an annotated nodule also has it removed once per seed (the
annotated one, the first) and searched again. A removal is found when a clone has an end within 10 mm of it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    from scan_sources import extra_sources

    from medforensics.forge.base import run_attack
    from medforensics.forge.dataset_sources import auto_sources
    from medforensics.scan import clones

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra-ct", type=Path, action="append", default=[])
    ap.add_argument("--min-corr", type=float, default=clones.MIN_CORRELATION)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    clones.MIN_CORRELATION = args.min_corr
    md = [
        f"Match correlation >= {args.min_corr:g} (`benchmarks/clone_check.py`).",
        "",
        "| CT | shape | clones in the authentic series | seconds | removals found (<= 10 mm) "
        "| matches (mm^2 alike) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    total = [0, 0, 0]
    for src in auto_sources() + extra_sources(args.extra_ct):
        vol = src.volume
        vol.metadata.setdefault("nodules", src.nodules)
        t0 = time.perf_counter()
        authentic = clones.find_clones(vol.array, vol.spacing)
        seconds = time.perf_counter() - t0
        total[0] += len(authentic)
        found, matches = 0, []
        seeds = [int(s) for s in args.seeds.split(",") if s] if src.nodules else []
        for seed in seeds:
            n = src.nodules[0]
            centre = tuple(round(float(v)) for v in n.center_voxel)
            forged, _mask, _rec = run_attack("clone-remove", vol, seed=seed, center=centre)
            sp = np.asarray(forged.spacing)
            hit = near_site(clones.find_clones(forged.array, forged.spacing), centre, sp)
            found += bool(hit)
            matches.append(f"{hit[0].matches} ({hit[0].agreeing_mm2:.0f})" if hit else "0")
        total[1] += found
        total[2] += len(seeds)
        row = (
            f"| {src.name} | {' x '.join(map(str, vol.shape))} | {len(authentic)} | {seconds:.2f} | "
            f"{found}/{len(seeds) if seeds else '-'} | {', '.join(matches) or '-'} |"
        )
        md.append(row)
        print(row, flush=True)
    md += ["", f"Clones in authentic series: {total[0]}; removals found: {total[1]}/{total[2]}."]
    emit(md, args.out)


def near_site(found: list[Any], centre: Any, sp: np.ndarray) -> list[Any]:
    """The clones in ``found`` with an end within 10 mm of ``centre`` (voxels; ``sp``: spacing in mm)."""
    return [
        c
        for c in found
        if min(np.linalg.norm((np.asarray(e) - np.asarray(centre)) * sp) for e in (c.copy, c.source)) <= 10
    ]


def emit(md: list[str], out: Path | None) -> None:
    """Print the Markdown lines ``md`` and write them to ``out`` (when given)."""
    text = "\n".join(md) + "\n"
    print(text)
    if out:
        out.write_text(text)


if __name__ == "__main__":
    main()
