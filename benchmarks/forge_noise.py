"""The forge's noise touch-up: in-plane noise of each edit's core against the lung around it, per noise plane.

Every noise-matched attack (``forge.base.NoiseMatched``: blob-inject, copy-move, inpaint-remove, ctgan-inject,
ctgan-remove) is run on each real CT (``forge.dataset_sources.auto_sources`` and the ``--extra-ct`` folders as
``scan_accuracy.py`` reads them) at its first annotated nodules (removals) or at a random lung site
(injections), once with the touch-up measured in 3-D (``volume``, the forge before session 41) and once
within slices (``slice``). Reported: the in-plane noise (``forge.cubes.noise_std``, robust std of the
in-plane high-pass) of the edit's core (the sphere of the removed or injected radius, 1.5 mm in from its
edge; injected cores hold the nodule's own texture too) after the attack, and of the untouched aerated lung
in the same box before it; the lag-1 correlation of that residual between slices
(``forge.cubes.slice_correlation``) in the core and in the lung; and whether the ``volume`` run is
bit-identical to the attack with the plane left out of its parameters (how records forged before session 41
replay). The in-plane run is the forge as it is now (session 42: a blob's present noise measured in its solid
interior, ``noise_core``); the 3-D run leaves that out too. ``--noise-z matched``: the in-plane run's added
noise correlates between slices as the lung's does.

    python benchmarks/forge_noise.py [--extra-ct DIR ...] [--sites 2] [--noise-z matched] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

METHODS = ("blob-inject", "copy-move", "inpaint-remove", "ctgan-inject", "ctgan-remove")


def core_radius(method: str, params: dict[str, Any]) -> float:
    """Radius (mm) of the region the attack rewrote around its centre."""
    d = float(params["diameter_mm"]) / 2
    if method == "inpaint-remove":
        return d + float(params["margin_mm"])
    if method == "ctgan-remove":
        return float(params["hole_mm"]) / 2
    return d


def core_and_ring(
    method: str, before: Any, after: Any, mask: np.ndarray, params: dict[str, Any], bbox: list[int]
) -> str:
    """In-plane noise and its inter-slice correlation: the core after the attack / the untouched lung in its
    box before it."""
    from medforensics.forge.cubes import noise_std, slice_correlation

    sl = tuple(slice(a, b) for a, b in zip(bbox[:3], bbox[3:], strict=True))
    axes = [
        (np.arange(s.start, s.stop) - c) * sp
        for s, c, sp in zip(sl, params["center"], before.spacing, strict=True)
    ]
    dist = np.sqrt(sum(g**2 for g in np.meshgrid(*axes, indexing="ij")))
    core = dist <= max(core_radius(method, params) - 1.5, 1.0)
    ring = ~mask[sl] & (before.array[sl] < -500)
    a, b = after.array[sl], before.array[sl]
    noise = f"{noise_std(a, core, inplane=True):.0f} / {noise_std(b, ring, inplane=True):.0f}"
    return f"{noise} (r {slice_correlation(a, core):.2f} / {slice_correlation(b, ring):.2f})"


def main() -> None:
    from clone_check import emit
    from scan_sources import extra_sources

    from medforensics.forge.base import create_attack
    from medforensics.forge.cubes import NOISE_Z
    from medforensics.forge.dataset_sources import auto_sources, nodule_sites

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra-ct", type=Path, action="append", default=[])
    ap.add_argument("--sites", type=int, default=2, help="attacks per method and CT (seeds 0..N-1)")
    ap.add_argument("--noise-z", choices=NOISE_Z, default="independent")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    md = [
        "In-plane noise (HU) of each edit's core after the attack / of the lung around it before, and (r) "
        "its lag-1 correlation between slices in each (`benchmarks/forge_noise.py`); one cell per seed.",
        "",
        "| CT | voxel mm | attack | 3-D touch-up (before session 41) | "
        f"in-plane touch-up, {args.noise_z} between slices | 3-D replays records without the plane |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    sources = auto_sources() + extra_sources(args.extra_ct)
    donor_src = next((s for s in sources if s.nodules), None)
    for src in sources:
        vol = src.volume
        vol.metadata.setdefault("nodules", src.nodules)
        sites = nodule_sites(src, 40.0)
        for method in METHODS:
            removal = method.endswith("remove")
            if removal and not sites:
                continue
            kw: dict[str, Any] = {}
            if method == "copy-move":
                if donor_src is None:
                    continue
                kw = {"donor": donor_src.volume, "donor_centers": nodule_sites(donor_src, 40.0)}
            cells: dict[str, list[str]] = {"volume": [], "slice": []}
            replay = True
            for seed in range(args.sites):
                centre = sites[seed % len(sites)] if removal else None
                for plane in ("volume", "slice"):
                    z = args.noise_z if plane == "slice" else "independent"
                    attack = create_attack(method, noise_plane=plane, noise_z=z, **kw)
                    try:
                        params = attack.sample_params(vol, np.random.default_rng(seed), center=centre)
                        if plane == "volume":  # the forge before session 41: no blob interior either
                            params.pop("noise_core", None)
                        out, mask, rec = attack.apply(vol, params, seed=seed)
                    except Exception as err:  # a site an attack cannot take: say so in the cell
                        cells[plane].append(f"({type(err).__name__})")
                        continue
                    cells[plane].append(
                        core_and_ring(method, vol, out, mask, params, list(rec.bbox_voxel or []))
                    )
                    if plane == "volume":
                        legacy = {k: v for k, v in params.items() if k not in ("noise_plane", "noise_z")}
                        again = attack.apply(vol, legacy, seed=seed)[0].array
                        replay &= bool(np.array_equal(again, out.array))
            sp = ", ".join(f"{s:.2g}" for s in vol.spacing)
            md.append(
                f"| {src.name} | {sp} | {method} | {'; '.join(cells['volume'])} | "
                f"{'; '.join(cells['slice'])} | {'yes' if replay else 'no'} |"
            )
            print(md[-1], flush=True)
    emit(md, args.out)


if __name__ == "__main__":
    main()
