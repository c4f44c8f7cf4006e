"""Dense localiser training batches: where patches sit, their zoom, the worker processes drawing them."""

from __future__ import annotations

import numpy as np
import pytest

from medforensics.train.dense import Item, load_items
from medforensics.train.dense_batches import BatchSource, _patch, _resize
from tests.train._dense import tiny_config


def test_patch_centred_on_attack_and_padded() -> None:
    img = np.random.default_rng(0).random((2, 6, 20, 20)).astype(np.float32)
    tgt = np.zeros(img.shape[1:], np.int64)
    tgt[3, 10:12, 10:12] = 1
    it = Item(img, tgt, "FM", "x", "p", "u", (2.0, 1.4, 1.4), np.argwhere(tgt > 0))
    rng = np.random.default_rng(1)
    for _ in range(10):
        x, y = _patch(it, (8, 16, 16), rng, it.focus)
        assert x.shape == (2, 8, 16, 16) and y.shape == (8, 16, 16)
        assert (y == 1).any()
        assert x.min() > 0  # edge-padded, never zeros (air) where the scan ends


def test_resize_keeps_the_attack_and_the_patch_size() -> None:
    img = np.random.default_rng(0).random((2, 8, 40, 40)).astype(np.float32)
    tgt = np.zeros(img.shape[1:], np.int64)
    tgt[4, 18:22, 18:22] = 2
    x, y = _resize(img, tgt, (8, 32, 32))
    assert x.shape == (2, 8, 32, 32) and y.shape == (8, 32, 32) and set(np.unique(y)) == {0, 2}
    assert abs(float(np.argwhere(y == 2).mean(0)[1]) - 16) <= 1.5


def _marked(shape: tuple[int, int, int], at: tuple[int, int, int], label: str) -> Item:
    """A blank scan with a bright 4-voxel cube at ``at`` (classes: all tampered for FM, else authentic)."""
    img = np.zeros((1, *shape), np.float32)
    z, y, x = at
    img[0, z - 2 : z + 2, y - 2 : y + 2, x - 2 : x + 2] = 1.0
    target = np.full(shape, 1 if label == "FM" else 0, np.int64)
    return Item(img, target, label, "m", "p", label, (2.5, 1.4, 1.4))


def test_batch_workers_draw_the_same_batches_whatever_their_number() -> None:
    import torch

    items = load_items(tiny_config())["train"]

    def draw(workers: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        src = BatchSource(items, tiny_config(workers=workers), np.random.default_rng(0))
        try:
            return list(src.block(3, 5))
        finally:
            src.close()

    one, two = draw(1), draw(2)
    assert len(one) == 3 and one[0][0].shape == (2, 2, 8, 32, 32) and one[0][1].dtype == torch.int64
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(one, two, strict=True))
    assert not torch.equal(one[0][0], one[1][0])  # each step its own stream


def test_a_batch_worker_that_dies_is_an_error_not_a_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    from concurrent.futures.process import BrokenProcessPool

    from medforensics.train import dense_batches

    items = [_marked((8, 64, 64), (4, 32, 32), "FM"), _marked((8, 64, 64), (4, 32, 32), "TB")]
    monkeypatch.setattr(dense_batches, "batch", lambda *a: os._exit(3))  # the forked workers see it
    src = dense_batches.BatchSource(items, tiny_config(workers=2), np.random.default_rng(0))
    try:
        with pytest.raises(BrokenProcessPool):
            next(iter(src.block(1, 4)))
    finally:
        src.close()
    assert src.pool is None


def test_batch_workers_see_the_hard_negatives_mined_before_their_block() -> None:

    authentic = _marked((8, 200, 200), (4, 150, 150), "TB")
    items = [_marked((8, 64, 64), (4, 32, 32), "FM"), authentic]
    cfg = tiny_config(workers=2, hard_negative=1.0)
    src = BatchSource(items, cfg, np.random.default_rng(0))
    try:
        before = [float(x[1].max()) for x, _ in src.block(1, 12)]  # authentic patch: second in the batch
        authentic.hard = np.array([[4, 150, 150]])
        after = [float(x[1].max()) for x, _ in src.block(13, 24)]
    finally:
        src.close()
    assert sum(v > 0.5 for v in before) <= 3  # the cube covers about 3% of random patch positions
    assert all(v > 0.5 for v in after)
