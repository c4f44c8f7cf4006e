"""Thread helpers: the parallel results equal the serial ones, in order."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy import ndimage

from medforensics._threads import per_slice, slabs, thread_map, workers


def test_workers_follows_torch_threads() -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        assert workers() == 3
    finally:
        torch.set_num_threads(before)


def test_thread_map_keeps_order_and_uses_threads() -> None:
    seen: set[int] = set()
    barrier = threading.Barrier(2, timeout=10)

    def f(x: int) -> int:
        seen.add(threading.get_ident())
        if x < 2:
            barrier.wait()  # both first items must run at the same time, or this times out
        return x * x

    assert thread_map(f, range(6), n=2) == [0, 1, 4, 9, 16, 25]
    assert len(seen) == 2
    assert thread_map(f, [5], n=4) == [25]  # one item: no pool


@pytest.mark.parametrize(("depth", "n"), [(10, 3), (2, 4), (1, 2), (7, 1)])
def test_slabs_cover_depth_once(depth: int, n: int) -> None:
    parts = slabs(depth, n)
    assert len(parts) == min(n, depth)
    assert [i for a, b in parts for i in range(a, b)] == list(range(depth))


def test_per_slice_matches_serial_filter_and_binary_closing() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(9, 20, 24)).astype(np.float32)
    box = (1, 5, 3)
    want = ndimage.uniform_filter(a, box, mode="nearest")
    out = np.empty_like(a)
    got = per_slice(lambda s, d: ndimage.uniform_filter(s, box, output=d, mode="nearest"), a, out, n=2)
    assert got is out
    np.testing.assert_array_equal(got, want)
    m = rng.random((9, 20, 24)) > 0.6
    disc = np.ones((1, 3, 3), bool)
    want_m = ndimage.binary_closing(m, structure=disc, border_value=0)
    got_m = per_slice(
        lambda s, d: ndimage.binary_closing(s, structure=disc, border_value=0, output=d),
        m,
        np.empty(m.shape, bool),
        n=3,
    )
    np.testing.assert_array_equal(got_m, want_m)


def test_per_slice_in_place_and_shape_check() -> None:
    a = np.arange(24, dtype=np.float64).reshape(4, 2, 3)

    def double(s: np.ndarray, d: np.ndarray) -> None:
        d[...] = s * 2

    assert per_slice(double, a, a, n=2) is a
    np.testing.assert_array_equal(a, np.arange(24).reshape(4, 2, 3) * 2)
    with pytest.raises(ValueError, match="slices"):
        per_slice(double, a, np.empty((3, 2, 3)))
