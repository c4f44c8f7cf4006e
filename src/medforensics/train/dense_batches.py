"""Training batches of the dense localiser: patches drawn from :mod:`~medforensics.train.dense_data`'s
items (where they sit, augmentation, pixel-size zoom), here or in forked worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from medforensics.train.dense_config import DenseConfig
from medforensics.train.dense_data import LABELS, Item


def _patch(
    it: Item, size: tuple[int, int, int], rng: np.random.Generator, centres: NDArray[np.int64] | None
) -> tuple[Any, Any]:
    """A random ``size`` box of ``it`` (edge-padded), centred near one of ``centres`` when given."""
    shape = np.asarray(it.target.shape)
    want = np.asarray(size)
    if centres is not None and len(centres):
        c = centres[rng.integers(len(centres))]
        start = c - want // 2 + rng.integers(-want // 4, want // 4 + 1)
    else:
        start = np.array(
            [rng.integers(min(0, s - w), max(0, s - w) + 1) for s, w in zip(shape, want, strict=True)]
        )
    start = np.clip(start, np.minimum(0, shape - want), np.maximum(0, shape - want))
    lo = np.maximum(start, 0)
    hi = np.minimum(start + want, shape)
    img = np.zeros((it.image.shape[0], *size), np.float32)
    tgt = np.zeros(size, np.int64)
    dst = tuple(slice(int(a - s), int(b - s)) for a, b, s in zip(lo, hi, start, strict=True))
    src = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    img[(slice(None), *dst)] = it.image[(slice(None), *src)]
    tgt[dst] = it.target[src]
    pad = [(int(d.start), int(w - d.stop)) for d, w in zip(dst, want, strict=True)]
    if any(p != (0, 0) for p in pad):  # edge-pad the image (air would look like an edit)
        img = np.pad(img[(slice(None), *dst)], [(0, 0), *pad], mode="edge")
    return img, tgt


def _augment(img: NDArray[Any], tgt: NDArray[Any], rng: np.random.Generator) -> tuple[Any, Any]:
    """Flips and in-plane transposition of all channels; intensity, blur and noise on the HU channel; a
    small level shift of the noise channel (its per-series normalisation is not exact on a crop)."""
    for ax in (1, 2):
        if rng.random() < 0.5:
            img, tgt = np.flip(img, ax + 1), np.flip(tgt, ax)
    if rng.random() < 0.5:
        img, tgt = np.swapaxes(img, 2, 3), np.swapaxes(tgt, 1, 2)
    img = np.array(img, np.float32)
    hu = img[0] * rng.uniform(0.95, 1.05) + rng.uniform(-0.02, 0.02)
    # scanners differ in noise and sharpness (kernel, dose, slice thickness): do not let the model key on them
    if rng.random() < 0.3:
        from scipy import ndimage

        hu = ndimage.gaussian_filter(hu, (0.0, *(rng.uniform(0.3, 0.8),) * 2))
    if rng.random() < 0.3:
        hu = hu + rng.normal(0.0, rng.uniform(0.002, 0.012), hu.shape)
    img[0] = hu
    if len(img) > 1:
        img[1:] += rng.uniform(-0.1, 0.1)
    return np.ascontiguousarray(img, np.float32), np.ascontiguousarray(tgt)


def _resize(img: NDArray[Any], tgt: NDArray[Any], size: tuple[int, int, int]) -> tuple[Any, Any]:
    """Zoom a patch in-plane to ``size`` (bilinear for the image, nearest for the classes; the depth is
    kept). Torch's interpolation on the grid of ``scipy.ndimage.zoom(order=1, grid_mode=True)``: the same
    values to 1e-5, 0.5 ms against about 18 ms for a 2 x 16 x 92 x 92 patch."""
    import torch.nn.functional as F

    hw = (int(size[1]), int(size[2]))
    x = torch.from_numpy(np.ascontiguousarray(img, np.float32))  # (C, D, h, w): C as batch, D as channels
    out_i = F.interpolate(x, size=hw, mode="bilinear", align_corners=False)
    t = torch.from_numpy(np.ascontiguousarray(tgt)).float()[None]
    out_t = F.interpolate(t, size=hw, mode="nearest-exact")[0]
    return out_i.numpy(), out_t.to(torch.int64).numpy()


def _draw(
    pool: list[Item], cfg: DenseConfig, rng: np.random.Generator
) -> tuple[Item, NDArray[np.int64] | None]:
    """A scan of ``pool`` and where its patch is centred (None: anywhere).

    An authentic scan with mined hard points (the model's own current false alarms) is centred on one of
    them with probability ``cfg.hard_negative``. Tampered patches are centred on the attack 2/3 of the time
    and TM ones on the real nodule half of the time (so a real nodule is seen as authentic as often as an
    injected one is seen as injected).
    """
    it = pool[rng.integers(len(pool))]
    if it.hard is not None and len(it.hard) and rng.random() < cfg.hard_negative:
        return it, it.hard
    return it, it.focus if rng.random() < (2 / 3 if it.label in LABELS else 1 / 2) else None


def batch(items: list[Item], cfg: DenseConfig, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch: half tampered scans, half authentic (:func:`_draw` says where patches sit)."""
    tampered = [it for it in items if it.label in LABELS]
    authentic = [it for it in items if it.label not in LABELS]
    xs, ys = [], []
    for k in range(cfg.batch_size):
        it, centres = _draw(tampered if k % 2 == 0 else authentic, cfg, rng)
        zoom = float(rng.uniform(*cfg.zoom_range))
        size = (cfg.patch[0], *(round(p * zoom) for p in cfg.patch[1:]))
        img, tgt = _patch(it, size, rng, centres)  # type: ignore[arg-type]
        if size != tuple(cfg.patch):  # another pixel size: other scanners, other patients' anatomy scale
            img, tgt = _resize(img, tgt, cfg.patch)
        img, tgt = _augment(img, tgt, rng)
        xs.append(img)
        ys.append(tgt)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


#: Worker processes' copy of the training scans and config (inherited by fork, never pickled).
_WORKER: dict[str, Any] = {}


def _init_worker(items: list[Item], cfg: DenseConfig) -> None:
    _WORKER.update(items=items, cfg=cfg)
    torch.set_num_threads(1)


def _worker_batch(task: tuple[list[int], list[NDArray[np.int64] | None]]) -> tuple[Any, Any]:
    seed, hard = task
    items: list[Item] = _WORKER["items"]
    for it, h in zip(items, hard, strict=True):
        it.hard = h
    x, y = batch(items, _WORKER["cfg"], np.random.default_rng(seed))
    return x.numpy(), y.numpy().astype(np.int8)  # int8: a third of the bytes through the pipe


class BatchSource:
    """Training batches for steps ``first..last`` (:meth:`block`), drawn here or by ``cfg.workers`` forked
    processes (:data:`DenseConfig.workers`). Workers draw a block with the hard negatives the items hold when
    the block starts, so blocks end where mining happens. Create it before any CUDA work: the workers are
    forked (the scans are shared, not pickled), as PyTorch's DataLoader does; Python 3.12 warns about fork
    in a threaded process, and the workers only run NumPy/SciPy and single-threaded torch. A worker that
    dies raises ``BrokenProcessPool`` in :meth:`block` (a ``multiprocessing.Pool``, used before session 45,
    waits for its batch for ever), as the loaders of :func:`load_items` do."""

    def __init__(self, items: list[Item], cfg: DenseConfig, rng: np.random.Generator) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.items, self.cfg, self.rng = items, cfg, rng
        self.pool = (
            ProcessPoolExecutor(cfg.workers, mp.get_context("fork"), _init_worker, (items, cfg))
            if cfg.workers > 0
            else None
        )

    def block(self, first: int, last: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of steps ``first`` to ``last`` (inclusive), in order."""
        if self.pool is None:
            for _ in range(first, last + 1):
                yield batch(self.items, self.cfg, self.rng)
            return
        hard = [it.hard for it in self.items]
        tasks = (([self.cfg.seed, k], hard) for k in range(first, last + 1))
        from medforensics._pools import children_ignore_sigint

        with children_ignore_sigint():  # the first block forks the workers: Ctrl-C is the trainer's
            drawn = self.pool.map(_worker_batch, tasks)
        for x, y in drawn:
            yield torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def close(self) -> None:
        """End the worker processes (batches drawn ahead and not used are dropped)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
