"""An earlier commit's model grid against this checkout's (``scan_speed.md``, sessions 35-36), on one CT.

Scans ``CT`` with ``train.dense_data.model_input`` as it was at ``--rev`` (loaded from ``git show``; 2713aa2:
full-size block means, then ``scipy.ndimage.zoom`` on one thread; eeb0da2: torch's trilinear zoom, in-plane
inside the block-mean pass) and as it is (the z zoom inside the pass too), alternating in one process, and
prints the median seconds of each and both scores.
The demo CT needs no zoom; a CT of 0.98 mm pixels or 3 mm slices does (``benchmarks/data/fetch_extra_ct.py``:
``platipy/testcase.nii.gz``). Peak memory: ``scan_speed.py --child FILE MODEL_DIR`` at either commit.

    python benchmarks/zoom_ab.py CT [--rev 2713aa2] [--reps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from scan_stages_ab import old_module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ct")
    ap.add_argument("--rev", default="2713aa2", help="the commit whose model grid is compared")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import medforensics.train.dense as dense
    from medforensics.io.reader import read_volume
    from medforensics.scan.detector import bundled_dir, load_detector
    from medforensics.scan.pipeline import scan_volume
    from medforensics.train.dense_data import GridInput

    old = old_module(args.rev, "src/medforensics/train/dense_data.py", "old_dense_data")
    det = load_detector(bundled_dir())
    volume = read_volume(args.ct)

    def old_input(*a: Any, **k: Any) -> Any:  # the old grid in this checkout's GridInput (its methods)
        return GridInput(**vars(old.model_input(*a, **k)))

    versions = {args.rev: old_input, "this checkout": dense.model_input}
    seconds: dict[str, list[float]] = {k: [] for k in versions}
    scores: dict[str, float | None] = {}
    for _ in range(args.reps):
        for name, fn in versions.items():
            dense.model_input = fn  # scan's dense detector imports it from here at each scan
            t0 = time.perf_counter()
            scores[name] = scan_volume(volume, det, explain=None).score
            seconds[name].append(time.perf_counter() - t0)
    dense.model_input = versions["this checkout"]
    for name in versions:
        print(f"{name}: median {statistics.median(seconds[name]):.2f} s of {args.reps}, score {scores[name]}")


if __name__ == "__main__":
    main()
