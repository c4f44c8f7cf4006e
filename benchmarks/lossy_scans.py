"""The bundled detector on real CTs stored lossy: authentic false alarms and attacks found, per codec.

A PACS archive may keep CT lossy (JPEG 2000 irreversible, 12-bit JPEG, JPEG-LS near-lossless), and the
detector reads the noise that lossy coding changes. For every real CT ``scan`` assesses (slices up to 3 mm,
pixels up to 1 mm; ``forge.dataset_sources.auto_sources`` and ``--extra-ct`` folders as
``scan_accuracy.py``): the series as stored, with a CT-GAN injection and with a blob injection (seed 3, as
``resampling.py --scan``), each scanned lossless and after every codec of ``lossy_coding.CODECS`` (every
slice coded as a 12-bit DICOM image and decoded again). The scan is ``scan_volume``'s on the decoded pixels
with headers that say LossyImageCompression 01, as an archive's lossy copy does: the detector's lossy
operating point applies where its calibration has one (``recalibrate_dense.py --lossy-only``).

``--images``: instead, the 2-D path: every real radiograph and MR source of ``image_clones.sources`` as
stored and JPEG-compressed at quality 95, 85, 75 and 50 after 8-bit scaling (``image_clones.jpeg_copy``),
scanned with both bundled detectors as ``scan`` does: verdict, score and findings.

    python benchmarks/lossy_scans.py [--extra-ct DIR ...] [--model DIR] [--images] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from lossy_coding import CODECS, coded_volume
from scan_sources import without_headers

KINDS = ("authentic", "ctgan-inject", "blob-inject")


#: ``--headers``: what the coded series' headers say (``declared``: LossyImageCompression 01, as an archive's
#: lossy copy; ``undeclared``: CT headers without it, as a lossy copy decoded and stored again as lossless
#: DICOM; ``none``: no headers, as a NIfTI or MetaImage file written from it).
HEADERS = ("declared", "undeclared", "none")


def coded_headers(volume: Any, headers: str = "declared") -> Any:
    """``volume`` with one header per slice (Modality CT; LossyImageCompression 01 when ``declared``), or
    none (``none``), as :data:`HEADERS` says."""
    import dataclasses

    from pydicom.dataset import Dataset

    if headers not in HEADERS:
        raise ValueError(f"--headers is one of {', '.join(HEADERS)}; got {headers!r}")
    if headers == "none":
        return dataclasses.replace(without_headers(volume), modality="CT")
    out = []
    for _ in range(volume.shape[0]):
        ds = Dataset()
        ds.Modality = "CT"
        if headers == "declared":
            ds.LossyImageCompression = "01"
        out.append(ds)
    return dataclasses.replace(volume, datasets=out, modality="CT")


def _cell(detector: Any, volume: Any, truth: Any) -> tuple[str, bool, bool]:
    """(table cell, flagged, top finding within 10 mm of ``truth``) of one scan."""
    from medforensics.scan.pipeline import scan_volume

    r = scan_volume(volume, detector, explain=None, path="benchmark")
    flagged = r.verdict == "tampered"
    lossy = r.extra.get("operating_point") == "lossy coding"
    cell = f"{r.score or 0.0:.3f}" + (" L" if lossy else "") + (" **T**" if flagged else "")
    top = next((f for f in r.findings if f.type != "metadata" and f.center_voxel), None)
    near = False
    if truth is not None and top is not None and flagged:
        d = float(
            np.linalg.norm((np.asarray(top.center_voxel) - np.asarray(truth)) * np.asarray(volume.spacing))
        )
        near = d <= 10.0
        cell += f" {d:.0f} mm"
    return cell, flagged, near


#: ``--images``: JPEG qualities
QUALITIES = (95, 85, 75, 50)


def image_lines() -> list[str]:
    """``--images``: the 2-D path on real radiographs and MR, as stored and JPEG-compressed."""
    from image_clones import jpeg_copy, sources

    from medforensics.io.reader import read_volume
    from medforensics.scan.detector import bundled_dir, load_detector
    from medforensics.scan.pipeline import scan_volume

    det, det2 = load_detector(bundled_dir("detector")), load_detector(bundled_dir("detector2d"))
    lines = [
        "| image | modality | as stored | " + " | ".join(f"JPEG q{q}" for q in QUALITIES) + " |",
        "|" + " --- |" * (3 + len(QUALITIES)),
    ]
    flagged = found = 0
    for name, path in sources():
        vol = read_volume(path)
        cells = []
        for q in (None, *QUALITIES):
            v = vol if q is None else jpeg_copy(vol, q)
            v.modality = vol.modality
            r = scan_volume(v, det, detector2d=det2, explain=None, path=name)
            flagged += q is not None and r.verdict != "authentic"
            found += q is not None and bool(r.findings)
            checks = ", ".join(sorted({f.check or f.type for f in r.findings}))
            cells.append(f"{r.verdict} {r.score or 0.0:.3f}" + (f" ({checks})" if checks else ""))
        lines.append(f"| {name} | {vol.modality} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    n = (len(lines) - 2) * len(QUALITIES)
    lines += ["", f"JPEG copies not called authentic: {flagged} of {n}; with any finding: {found} of {n}."]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--extra-ct", type=Path, action="append", default=[], help="Folders of more real CTs.")
    ap.add_argument("--model", type=Path, default=None, help="A detector folder (default: the bundled one).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", action="store_true", help="The 2-D path on radiographs and MR instead.")
    ap.add_argument(
        "--headers", choices=HEADERS, default="declared", help="What the coded series' headers say."
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.images:
        text = "\n".join(image_lines())
        if args.out:
            args.out.write_text(text + "\n")
        return 0
    from image_clones import ct_sources

    from medforensics.forge.base import create_attack
    from medforensics.scan.detector import bundled_dir, load_detector

    detector = load_detector(args.model or bundled_dir("detector"))
    variants = ["lossless", *CODECS]
    cal = detector.calibration
    lossy_thr = "none" if cal.lossy is None else f"{cal.lossy:.4f}"
    lines = [
        f"Detector {detector.info.name} ({detector.info.sha256[:12]}), series threshold "
        f"{cal.operating_threshold:.4f}, for series stored lossy: {lossy_thr}. Coded series' headers: "
        f"{args.headers}.",
        "",
        "| CT | series | " + " | ".join(variants) + " |",
        "|" + " --- |" * (2 + len(variants)),
    ]
    flagged = {(v, k): 0 for v in variants for k in KINDS}
    found = {v: 0 for v in variants}
    n = 0
    for src in ct_sources(args.extra_ct):
        vol = src.volume
        if vol.spacing[0] > 3.0 or vol.spacing[2] > 1.0 or not vol.axial_axes().is_identity:
            continue
        n += 1
        for kind in KINDS:
            truth = None
            forged = vol
            if kind != "authentic":
                attack = create_attack(kind)
                params = attack.sample_params(vol, np.random.default_rng(3))
                forged, truth = attack.apply(vol, params, 3)[0], params["center"]
            cells = []
            for v in variants:
                if v == "lossless":
                    scanned = forged.with_array(np.asarray(forged.array, np.float32))
                else:
                    coded = forged.with_array(coded_volume(forged.array, v))
                    scanned = coded_headers(coded, args.headers)
                cell, hit, near = _cell(detector, scanned, truth)
                flagged[v, kind] += hit
                found[v] += near
                cells.append(cell)
            lines.append(f"| {src.name} | {kind} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    lines += [
        "",
        "Each cell: the calibrated series score; L: held to the lossy operating point (its pixels carry a "
        "lossy coding grid); **T**: flagged tampered, then the top finding's distance from the attack's "
        "centre.",
        "",
        "| | " + " | ".join(variants) + " |",
        "|" + " --- |" * (1 + len(variants)),
        f"| authentic flagged (of {n}) | "
        + " | ".join(str(flagged[v, "authentic"]) for v in variants)
        + " |",
        f"| attacks flagged (of {2 * n}) | "
        + " | ".join(str(sum(flagged[v, k] for k in KINDS[1:])) for v in variants)
        + " |",
        "| ... top finding within 10 mm | " + " | ".join(str(found[v]) for v in variants) + " |",
    ]
    print("\n".join(lines[-5:]))
    if args.out:
        args.out.write_text(
            "# Real CTs stored lossy (benchmarks/lossy_scans.py)\n\n" + "\n".join(lines) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
