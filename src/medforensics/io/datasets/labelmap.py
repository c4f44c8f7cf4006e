"""Lesions from a label map (a segmentation volume beside its CT, as 3D Slicer and pyradiomics store them).

Each 3-D connected component of non-zero voxels is one :class:`~medforensics.io.annotations.Nodule`: its
centre of mass, the diameter of the sphere of the same volume, and its extent in voxels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from medforensics.errors import InputError
from medforensics.io.annotations import Nodule
from medforensics.io.volume import Volume

#: File types whose ``<stem>_label<suffix>`` companion is looked for (3D Slicer's and pyradiomics' habit).
LABEL_SUFFIXES = (".nrrd", ".nhdr", ".nii.gz", ".nii", ".mha", ".mhd")


def image_stem(name: str, suffixes: tuple[str, ...] = LABEL_SUFFIXES) -> tuple[str, str] | None:
    """``(stem, suffix)`` of an image file name with one of ``suffixes`` (case kept; ``lung1_image.nrrd`` ->
    ``("lung1_image", ".nrrd")``), or None for another file type and for a label map (``*_label``)."""
    suffix = next((x for x in suffixes if name.lower().endswith(x)), None)
    if suffix is None or name[: -len(suffix)].endswith("_label"):
        return None
    return name[: -len(suffix)], name[-len(suffix) :]


def label_map_beside(image: str | Path) -> Path | None:
    """The label map stored beside ``image`` by name (``lung1_image.nrrd`` or ``lung1.nrrd`` ->
    ``lung1_label.nrrd``), or None."""
    image = Path(image)
    parts = image_stem(image.name)
    if parts is None or not image.is_file():
        return None
    stem, suffix = parts
    candidate = image.with_name(f"{stem.removesuffix('_image')}_label{suffix}")
    return candidate if candidate.is_file() else None


def label_map_nodules(label_path: str | Path, volume: Volume) -> list[Nodule]:
    """The lesions of the label map at ``label_path``, which must lie on ``volume``'s voxel grid."""
    from medforensics.io.reader import read_volume

    label_path = Path(label_path)
    labels = read_volume(label_path)
    same_grid = labels.shape == volume.shape and np.allclose(labels.affine, volume.affine, atol=1e-3)
    if not same_grid:
        raise InputError(
            f"label map grid {labels.shape} does not match the image's {volume.shape}", path=label_path
        )
    mask = np.asarray(labels.array) != 0
    comps, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    voxel_mm3 = float(np.prod(volume.spacing))
    # every component's centre and size in one pass over the volume each
    centres = ndimage.center_of_mass(mask, comps, range(1, n + 1))
    counts = np.bincount(comps.ravel(), minlength=n + 1)
    out: list[Nodule] = []
    for k, box in enumerate(ndimage.find_objects(comps), start=1):
        if box is None:
            continue
        centre = tuple(float(c) for c in centres[k - 1])
        count = int(counts[k])
        out.append(
            Nodule(
                center_voxel=centre,  # type: ignore[arg-type]
                center_mm=tuple(float(v) for v in volume.index_to_patient(centre)),  # type: ignore[arg-type]
                diameter_mm=float((6.0 * count * voxel_mm3 / np.pi) ** (1.0 / 3.0)),
                diameter_voxels=tuple(float(s.stop - s.start) for s in box),  # type: ignore[arg-type]
                source=f"label map {label_path.name}",
                nodule_id=str(k),
            )
        )
    return out
