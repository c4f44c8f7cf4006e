"""The model-grid zoom, scipy against torch, on one CT (session 35; ``scan_speed.md``).

Scans ``CT`` with ``train.dense_data._zoom`` as it was (``scipy.ndimage.zoom``, one thread) and as it is
(torch's trilinear interpolation on the same grid), alternating in one process, and prints the median
seconds of each and the largest score difference. The demo CT needs no zoom; a CT of 0.98 mm pixels or
3 mm slices does (``benchmarks/data/fetch_extra_ct.py``: ``platipy/testcase.nii.gz``).

    python benchmarks/zoom_ab.py CT [--reps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch


def scipy_zoom(low: Any, zoom: list[float]) -> Any:
    """The zoom before session 35."""
    from scipy import ndimage

    if all(z == 1.0 for z in zoom):
        return np.asarray(low, np.float32)
    return ndimage.zoom(low, zoom, order=1, grid_mode=True, mode="nearest").astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ct")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import medforensics.train.dense_data as dd
    from medforensics.io.reader import read_volume
    from medforensics.scan.detector import bundled_dir, load_detector
    from medforensics.scan.pipeline import scan_volume

    det = load_detector(bundled_dir())
    volume = read_volume(args.ct)
    versions = {"scipy": scipy_zoom, "torch": dd._zoom}
    seconds: dict[str, list[float]] = {k: [] for k in versions}
    scores: dict[str, float | None] = {}
    for _ in range(args.reps):
        for name, fn in versions.items():
            dd._zoom = fn
            t0 = time.perf_counter()
            res = scan_volume(volume, det, explain=None)
            seconds[name].append(time.perf_counter() - t0)
            scores[name] = res.score
    dd._zoom = versions["torch"]
    old, new = (statistics.median(seconds[k]) for k in versions)
    print(f"{args.ct}: scipy {old:.2f} s, torch {new:.2f} s (medians of {args.reps}), x{old / new:.2f}")
    if scores["scipy"] is not None and scores["torch"] is not None:
        print(f"score {scores['scipy']:.5f} (scipy) vs {scores['torch']:.5f} (torch)")


if __name__ == "__main__":
    main()
