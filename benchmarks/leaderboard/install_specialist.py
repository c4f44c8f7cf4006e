"""Install a noise specialist (a dense model trained with config ``noise_only``) beside the bundled detector.

Usage::

    medforensics train --config specialist.json          # "noise_only": true, "zcorr_channel": true, ...
    python benchmarks/leaderboard/recalibrate_dense.py --model DIR --data DS   # if the run did not
    python benchmarks/leaderboard/install_specialist.py --model DIR [--detector FOLDER]

The files land in ``FOLDER/uncorrelated/`` (default: the bundled detector,
``src/medforensics/assets/detector``); ``scan`` then draws the map of every series that folder's
specialist calibration holds to the uncorrelated-noise operating point with it
(:meth:`medforensics.scan.dense.DenseDetector.route`). The result is loaded once before anything is
replaced, so an incompatible specialist (other grid or channels, no uncorrelated-noise operating point)
is refused with the loader's one-line reason.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from make_dense_detector import ASSETS
from make_dense_detector import FILES as BUNDLED

from medforensics.errors import InputError, MedforensicsError
from medforensics.scan.dense import SPECIALIST_DIR, DenseDetector

#: The bundled model's files and the recalibration's record beside them.
FILES = (*BUNDLED, "calibration_scores.json", "calibration_training.json")


def install(model: Path, detector: Path) -> Path:
    """Copy ``model``'s files into ``detector/uncorrelated`` after checking the pair loads."""
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp) / "d"
        shutil.copytree(detector, trial, ignore=shutil.ignore_patterns(SPECIALIST_DIR))
        _copy(model, trial / SPECIALIST_DIR)
        try:
            DenseDetector.from_dir(trial)
        except MedforensicsError as err:  # name the folder given, not the trial copy
            raise InputError(f"not installed: {err.reason}", path=model) from None
    dest = detector / SPECIALIST_DIR
    if dest.exists():
        shutil.rmtree(dest)
    _copy(model, dest)
    return dest


def _copy(model: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    for name in FILES:
        if (model / name).is_file():
            shutil.copy2(model / name, dest / name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="The trained noise specialist's folder.")
    ap.add_argument("--detector", type=Path, default=ASSETS, help="The detector folder to install it in.")
    args = ap.parse_args()
    try:
        print(install(args.model, args.detector))
    except MedforensicsError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
