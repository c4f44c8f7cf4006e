"""``forge synthesize``: DCGAN samples written with plausible geometry, plus a ``synthesis.json`` record.

CT samples are HU images written as one-slice DICOM series (or NIfTI / lung-window PNG); X-ray samples are
PNGs by default; MR samples are DICOM in arbitrary units 0-1000. A 64-px sample stands for a crop of 50-100 %
of a real slice, so the pixel spacing is set to 0.75 * a typical field of view / size.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medforensics import __version__
from medforensics._atomic import atomic_path, check_folder_output, write_text_atomic
from medforensics.errors import ConfigError
from medforensics.forge.dcgan import bundled_weights, generate, load_generator, to_units, write_montage
from medforensics.io.volume import Volume

FORMATS = ("png", "dicom", "nifti")
#: Typical field of view (mm) per model and the DICOM modality written.
_FOV_MM = {"ct": 350.0, "xray": 400.0, "mr": 250.0}
_DICOM_MODALITY = {"ct": "CT", "xray": "DX", "mr": "MR"}
#: Most images one run writes, images generated at once, and images shown in ``montage.png``.
MAX_IMAGES = 100_000
_BATCH = 256
_MONTAGE_MAX = 256


def synthetic_volume(image: np.ndarray, key: str, index: int) -> Volume:
    """One generated image ``(h, w)`` in [-1, 1] as a one-slice Volume in physical-ish units."""
    size = image.shape[-1]
    px = round(0.75 * _FOV_MM[key] / size, 4)
    lo_hi = (0.0, 4095.0) if key == "xray" else None
    arr = np.round(to_units(image[None], key, lo_hi))
    half = px * (size - 1) / 2.0
    return Volume(
        arr,
        spacing=(2.5 if key != "xray" else 1.0, px, px),
        origin=(-half, -half, float(index) * 2.5),
        modality=_DICOM_MODALITY[key],
        metadata={
            "series_description": f"medforensics DCGAN synthetic {key} #{index}",
            "synthetic": True,
            "label": "SYN",
        },
    )


def _write_one(vol: Volume, key: str, fmt: str, out: Path, index: int) -> Path:
    if fmt == "png":
        from medforensics.io.image2d import write_png

        return write_png(vol, out / f"syn_{index:04d}.png", window="lung" if key == "ct" else None)
    if fmt == "nifti":
        from medforensics.io.nifti import write_nifti

        return write_nifti(vol, out / f"syn_{index:04d}.nii.gz")
    from medforensics.io.dicom_write import write_dicom_series

    folder = out / f"syn_{index:04d}"
    write_dicom_series(vol, folder, new_uids=True)
    return folder


def synthesize_to_dir(
    modality: str,
    out: str | Path,
    *,
    n: int = 16,
    fmt: str | None = None,
    seed: int = 0,
    weights: str | Path | None = None,
    montage: bool = True,
) -> dict[str, Any]:
    """Generate ``n`` images of ``modality`` into ``out``; returns the ``synthesis.json`` record."""
    key = modality.lower()
    path = Path(weights) if weights else bundled_weights(key)
    fmt = (fmt or ("png" if key == "xray" else "dicom")).lower()
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if not 1 <= n <= MAX_IMAGES:
        raise ConfigError(f"--n must be 1 to {MAX_IMAGES}, got {n}")
    out = Path(out)
    # before any work: the folder is written whole, so it must not hold the weights or unrelated files
    check_folder_output(out, [path], marker="synthesis.json")
    g = load_generator(path)
    z = None
    if n > _BATCH:  # the latents of one call, generated in batches (memory stays bounded)
        z = torch.randn(n, g.cfg.nz, generator=torch.Generator().manual_seed(seed))
    files: list[str] = []
    shown: list[np.ndarray] = []
    with atomic_path(out) as tmp:  # built beside ``out``, renamed into place when complete
        tmp.mkdir()
        for b0 in range(0, n, _BATCH):
            b1 = min(n, b0 + _BATCH)
            images = generate(g, n, seed=seed) if z is None else generate(g, b1 - b0, z=z[b0:b1])
            for i, im in enumerate(images, start=b0):
                files.append(_write_one(synthetic_volume(im, key, i), key, fmt, tmp, i).name)
            shown += list(images[: max(0, _MONTAGE_MAX - len(shown))])
        record: dict[str, Any] = {
            "tool": {"name": "medforensics", "version": __version__},
            "label": "SYN",
            "method": "dcgan-synth",
            "modality": key,
            "n": n,
            "seed": seed,
            "format": fmt,
            "size": int(g.cfg.size),
            "weights": path.name,
            "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "files": files,
        }
        if montage:
            write_montage(np.stack(shown), tmp / "montage.png")
            record["montage"] = "montage.png"
        write_text_atomic(tmp / "synthesis.json", json.dumps(record, indent=1) + "\n")
    return record
