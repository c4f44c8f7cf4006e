"""Header-only facts about image files (modality, shape, spacing, geometry) for fast catalogue listing.

Nothing here decodes pixels: DICOM is read with ``stop_before_pixels``, NIfTI through nibabel's header,
MetaImage through its text header, NRRD through SimpleITK's header read, PNG/JPEG/TIFF through Pillow's lazy
open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics.errors import InputError
from medforensics.io.image2d import is_image2d_path
from medforensics.io.metaimage import is_metaimage_path, read_mhd_header
from medforensics.io.nifti import is_nifti_path
from medforensics.io.nrrd import is_nrrd_path
from medforensics.io.volume import AXIAL_DIRECTION, Volume


@dataclass
class HeaderInfo:
    """What the headers say. ``spacing`` is None when the file does not record it."""

    modality: str | None
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float] | None
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: NDArray[np.float64] = field(default_factory=lambda: AXIAL_DIRECTION.copy())
    datasets: list[Any] = field(default_factory=list)

    def geometry_volume(self) -> Volume:
        """A :class:`Volume` with this geometry and header datasets but no real pixels (zero-stride zeros)."""
        array = np.broadcast_to(np.zeros((), dtype=np.float32), self.shape)
        return Volume(
            array=array,
            spacing=self.spacing or (1.0, 1.0, 1.0),
            origin=self.origin,
            direction=self.direction,
            modality=self.modality or "OT",
            datasets=list(self.datasets),
            metadata=self.metadata(),
        )

    def metadata(self) -> dict[str, Any]:
        """``series_uid`` and ``sop_instance_uids`` (slice order) where the headers are DICOM."""
        if not self.datasets:
            return {}
        uids = [str(ds.get("SOPInstanceUID", "")) for ds in self.datasets]
        series = self.datasets[0].get("SeriesInstanceUID")
        return {
            "series_uid": str(series) if series else None,
            "sop_instance_uids": uids if all(uids) and len(uids) == self.shape[0] else [],
        }


def probe_file(path: Path, modality_hint: str | None = None) -> HeaderInfo:
    """Header facts of one file of any supported format."""
    if is_nifti_path(path):
        info = probe_nifti(path)
    elif is_metaimage_path(path):
        info = probe_metaimage(path)
    elif is_nrrd_path(path):
        info = probe_nrrd(path)
    elif is_image2d_path(path):
        info = probe_image2d(path)
    elif looks_dicom(path):
        info = probe_dicom([path])
    else:
        raise InputError("unknown image format", path=path)
    if modality_hint and (info.modality is None or info.modality == "OT"):
        info.modality = modality_hint
    return info


def probe_series(kind: str, files: list[Path]) -> HeaderInfo:
    """Header facts of a discovered series (``kind`` as :func:`medforensics.io.reader.discover` names it)."""
    if kind.lower() == "dicom" or len(files) > 1:
        return probe_dicom(files)
    return probe_file(files[0])


def looks_dicom(path: Path) -> bool:
    """True for a ``.dcm`` name or DICOM content (so a bad ``.dcm`` gets a DICOM error message)."""
    from medforensics.io.dicom import is_dicom_file

    return path.suffix.lower() == ".dcm" or is_dicom_file(path)


# ---------------------------------------------------------------------------------------------- DICOM
def probe_dicom(files: list[Path]) -> HeaderInfo:
    """Header facts of one DICOM series (single-frame files or multi-frame), pixels unread.

    Geometry is :func:`medforensics.io.dicom.read_dicom_header`'s, the same as ``read_dicom_series`` gives.
    """
    from medforensics.io.dicom import read_dicom_header

    layout = read_dicom_header(files)
    ds0 = layout.datasets[layout.slices[0].ds_index]
    in_order = (
        layout.datasets if len(layout.datasets) == 1 else [layout.datasets[s.ds_index] for s in layout.slices]
    )
    return HeaderInfo(
        modality=str(ds0.get("Modality") or "") or None,
        shape=layout.shape,
        spacing=layout.spacing if layout.has_pixel_spacing else None,
        origin=layout.origin,
        direction=layout.direction,
        datasets=in_order,
    )


# ---------------------------------------------------------------------------------------------- others
def probe_nifti(path: Path) -> HeaderInfo:
    """NIfTI header facts; shape and spacing in (z, y, x) order, as ``read_nifti`` returns them."""
    import nibabel as nib

    from medforensics.io.nifti import nifti_affine_to_geometry

    try:
        img: Any = nib.load(str(path))
        dims = tuple(int(d) for d in img.shape)
    except Exception as exc:  # nibabel raises many types for bad headers
        raise InputError(f"not a readable NIfTI file ({type(exc).__name__}: {exc})", path=path) from exc
    if len(dims) > 3 and any(d != 1 for d in dims[3:]):
        raise InputError(f"4-D NIfTI with shape {dims} is not supported (one 3-D volume expected)", path=path)
    i, j, k = (*dims, 1, 1)[:3]
    spacing, origin, direction = nifti_affine_to_geometry(np.asarray(img.affine, dtype=np.float64), path)
    return HeaderInfo(modality=None, shape=(k, j, i), spacing=spacing, origin=origin, direction=direction)


def probe_metaimage(path: Path) -> HeaderInfo:
    """MetaImage text-header facts (ITK x, y, z reversed to z, y, x)."""
    fields = read_mhd_header(path)
    try:
        dims = [int(v) for v in fields["DimSize"].split()]
        sp = [float(v) for v in fields.get("ElementSpacing", fields.get("ElementSize", "")).split()] or None
    except ValueError as exc:
        raise InputError(f"bad MetaImage DimSize/ElementSpacing ({exc})", path=path) from exc
    dims3 = ([*dims, 1, 1])[:3]
    spacing = tuple(([*sp, 1.0, 1.0])[:3][::-1]) if sp else None
    return HeaderInfo(
        modality=fields.get("Modality", "").removeprefix("MET_MOD_") or None,
        shape=(dims3[2], dims3[1], dims3[0]),
        spacing=spacing,  # type: ignore[arg-type]
    )


def probe_nrrd(path: Path) -> HeaderInfo:
    """NRRD header facts through SimpleITK (LPS geometry; NRRD records no modality)."""
    from medforensics.io.metaimage import sitk_direction_to_volume, sitk_geometry, sitk_info

    info = sitk_info(path, "NRRD")
    size = [*info.GetSize(), 1][:3]
    spacing, origin, direction = sitk_geometry(info)
    return HeaderInfo(
        modality=None,
        shape=(int(size[2]), int(size[1]), int(size[0])),
        spacing=(float(spacing[2]), float(spacing[1]), float(spacing[0])),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=sitk_direction_to_volume(direction),
    )


def probe_image2d(path: Path) -> HeaderInfo:
    """PNG/JPEG/TIFF size without decoding; these formats record no detector spacing."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"not a readable image ({type(exc).__name__}: {exc})", path=path) from exc
    return HeaderInfo(modality=None, shape=(1, int(height), int(width)), spacing=None)
