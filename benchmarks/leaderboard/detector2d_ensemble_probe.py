"""Probe: several 2-D detector folders averaged (mean calibrated score) under scan's MR rule (session 31).

Indicative, not a bundle: the members may come from different group splits, so there is no common
validation split. The ensemble's MR cut-off is set as ``make_detector2d.py`` sets a single model's (the
lowest of 1000 fresh DCGAN MR samples, latent seeds from ``MR_CUT_SEED``, floored to 3 decimals); its
per-image threshold is the members' mean. Then either ``mr_false_alarms.py`` (``--json OUT``) or
``detector2d_checks.py`` (``--checks``) runs with the ensemble in place of ``--detector2d``.

    python benchmarks/leaderboard/detector2d_ensemble_probe.py DIR1,DIR2,... (--json OUT | --checks)
        [--root DIR ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import runpy
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/: mr_false_alarms
import mr_false_alarms as mrfa  # noqa: E402

MR_CUT_SEED = 900_000  # make_detector2d.MR_CUT_SEED (seed 0)


def ensemble(folders: list[str]) -> Any:
    """The first member's detector with ``score_images`` averaging every member's calibrated scores, and
    the ensemble's own MR cut-off and per-image threshold."""
    import medforensics.scan.detector as det_mod

    members = [det_mod.load_detector(f) for f in folders]
    base = det_mod.load_detector(folders[0])  # its own copy: members[0] keeps its calibration
    scorers = [m.score_images for m in members]

    def score_images(crops: Any) -> tuple[np.ndarray, np.ndarray]:
        ps = [s(crops) for s in scorers]
        return np.mean([p[0] for p in ps], 0), np.mean([p[1] for p in ps], 0)

    base.score_images = score_images
    p = mrfa.dcgan_mr_scores(base, 1000, seed=MR_CUT_SEED)
    cut = float(np.floor(p.min() * 1000) / 1000)
    thr = float(np.mean([m.calibration.threshold for m in members]))
    base.calibration = dataclasses.replace(base.calibration, mr_slice_threshold=cut, threshold=thr)
    print(
        f"ensemble of {len(members)}: MR cut-off {cut} (lowest {p.min():.4f}); per-image threshold {thr:.4f}"
    )
    return base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", help="comma-separated 2-D detector folders")
    ap.add_argument("--json", type=Path, help="run mr_false_alarms.py, rows as JSON here")
    ap.add_argument("--checks", action="store_true", help="run detector2d_checks.py instead")
    ap.add_argument("--root", action="append", default=[], help="mr_false_alarms.py --root")
    a = ap.parse_args()
    import medforensics.scan.detector as det_mod

    ens = ensemble(a.folders.split(","))
    load = det_mod.load_detector
    det_mod.load_detector = lambda f: ens if str(f) == "ENSEMBLE" else load(f)  # type: ignore[assignment]
    if a.checks:
        sys.argv = ["detector2d_checks.py", "ENSEMBLE"]
        runpy.run_path(str(HERE / "detector2d_checks.py"), run_name="__main__")
    else:
        roots = [x for r in a.root for x in ("--root", r)]
        mrfa.main(
            [*roots, "--detector2d", "ENSEMBLE", "--dcgan", "0", *(["--json", str(a.json)] if a.json else [])]
        )


if __name__ == "__main__":
    main()
