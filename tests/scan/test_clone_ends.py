"""Two ends of a clone candidate: the turn/shift between them and the area where their noise agrees."""

from __future__ import annotations

import numpy as np

from medforensics.scan.clone_ends import compare_ends


def _copied() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise slices with a 30 x 30 block of slice 1 turned a quarter into slice 3, 60 px to the right;
    keypoint-like points of the source block and where the turn puts them."""
    rng = np.random.default_rng(1)
    arr = rng.normal(-850.0, 20.0, (5, 100, 140)).astype(np.float32)
    arr[3, 30:60, 90:120] = np.rot90(arr[1, 30:60, 30:60])
    a = np.array([[1, 35, 38], [1, 50, 41], [1, 44, 55], [1, 33, 52]], np.float64)
    y, x = a[:, 1] - 30, a[:, 2] - 30  # np.rot90 puts block pixel (y, x) at (29 - x, y)
    b = np.column_stack([np.full(len(a), 3.0), 30 + 29 - x, 90 + y])
    return arr, a, b


def test_a_turned_copy_agrees_over_its_whole_block() -> None:
    arr, a, b = _copied()
    ag = compare_ends(lambda z: arr[z], arr.shape, a, b)
    assert 0.7 * 30 * 30 <= ag.agreeing <= 30 * 30  # the block, less its 1.5-pixel rim


def test_independent_noise_does_not_agree() -> None:
    arr, a, b = _copied()
    fresh = np.random.default_rng(9).normal(-850.0, 20.0, (30, 30)).astype(np.float32)
    arr[3, 30:60, 90:120] = fresh
    ag = compare_ends(lambda z: arr[z], arr.shape, a, b)
    assert ag.agreeing < 0.02 * 30 * 30
