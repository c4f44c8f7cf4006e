"""NIfTI-1/2 (.nii, .nii.gz) reading and writing with nibabel.

NIfTI stores voxels as (i, j, k) with an affine to RAS+ millimetres; a :class:`Volume` stores (z, y, x) =
(k, j, i) with LPS geometry. The conversion is exact: ``LPS = diag(-1, -1, 1) @ RAS`` and the array is the
nibabel data transposed (2, 1, 0).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics._atomic import write_bytes_atomic
from medforensics.errors import InputError
from medforensics.io.lazy import LazySlices
from medforensics.io.payload import check_payload
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

log = get_logger("io.nifti")

#: RAS <-> LPS flip (its own inverse).
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
#: Permutation between (z, y, x) array indices and NIfTI (i, j, k) voxel indices (its own inverse).
_ZYX_TO_IJK = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def infer_modality(array: NDArray[Any] | LazySlices, modality: str | None = None) -> tuple[str, str]:
    """(modality, how it was chosen) for a format that does not record the modality.

    An explicit ``modality`` wins ("argument"); otherwise values that look like Hounsfield units (1st
    percentile <= -500, air or lung, and max >= 300, bone or contrast) give "CT" and anything else "MR"
    ("heuristic"). MR intensities are non-negative or z-scored, with at most a few negative outliers.
    A lazy array is judged by 16 evenly spaced slices (:meth:`LazySlices.sample`).
    """
    if modality:
        return modality.upper(), "argument"
    flat = (array.sample() if isinstance(array, LazySlices) else np.asarray(array)).ravel()
    sample = flat[:: max(1, flat.size // 1_000_000)]  # a regular subsample keeps this fast on big volumes
    sample = sample[np.isfinite(sample)]
    if sample.size and float(np.percentile(sample, 1.0)) <= -500.0 and float(np.nanmax(flat)) >= 300.0:
        return "CT", "heuristic"
    return "MR", "heuristic"


def is_nifti_path(path: str | Path) -> bool:
    """True if the file name ends in .nii or .nii.gz."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _squeeze_to_3d(data: NDArray[Any], path: Path) -> NDArray[Any]:
    """Drop singleton dimensions beyond the third; refuse true 4-D (time series, vectors)."""
    if data.ndim == 2:
        return data[:, :, None]
    _check_3d(data.shape, path)
    return data.reshape(data.shape[:3]) if data.ndim > 3 else data


def _check_3d(shape: tuple[int, ...], path: Path) -> None:
    if any(n != 1 for n in shape[3:]):
        raise InputError(
            f"4-D NIfTI with shape {tuple(shape)} is not supported (one 3-D volume expected)", path=path
        )


def nifti_affine_to_geometry(
    affine: NDArray[np.float64], path: Path
) -> tuple[tuple[float, float, float], tuple[float, float, float], NDArray[np.float64]]:
    """(spacing, origin, direction) of a Volume from a NIfTI voxel-(i,j,k)-to-RAS affine."""
    if not np.all(np.isfinite(affine)):
        raise InputError("NIfTI affine contains NaN or infinity", path=path)
    matrix = _RAS_TO_LPS @ affine[:3, :3] @ _ZYX_TO_IJK  # column k: LPS step along array axis k
    spacing = np.linalg.norm(matrix, axis=0)
    if np.any(spacing <= 0):
        raise InputError("NIfTI affine has a zero-length voxel axis", path=path)
    direction = matrix / spacing[None, :]
    if abs(np.linalg.det(direction)) < 1e-6:
        raise InputError("NIfTI affine is singular", path=path)
    origin = _RAS_TO_LPS @ affine[:3, 3]
    return (
        (float(spacing[0]), float(spacing[1]), float(spacing[2])),
        (float(origin[0]), float(origin[1]), float(origin[2])),
        direction,
    )


def volume_to_nifti_affine(volume: Volume) -> NDArray[np.float64]:
    """The NIfTI (i, j, k)-to-RAS affine equivalent to the volume's geometry."""
    affine = np.eye(4)
    affine[:3, :3] = _RAS_TO_LPS @ (volume.direction * np.asarray(volume.spacing)[None, :]) @ _ZYX_TO_IJK
    affine[:3, 3] = _RAS_TO_LPS @ np.asarray(volume.origin)
    return affine


class NiftiPixels(LazySlices):
    """The float32 voxels of a NIfTI file, read a z-range at a time through nibabel's array proxy
    (scl_slope/scl_inter applied; see :class:`~medforensics.io.lazy.LazySlices`). An uncompressed ``.nii``
    is read where the slices lie; a ``.nii.gz`` is decompressed on from the last read (from its start when
    a read goes back). A file that turns out truncated is an :class:`InputError` naming it."""

    def __init__(self, path: Path, proxy: Any, shape: tuple[int, int, int]) -> None:
        super().__init__(shape)
        self.path, self.proxy = path, proxy

    def _read(self, ks: Sequence[int]) -> NDArray[np.float32]:
        out = np.empty((len(ks), *self.shape[1:]), np.float32)
        try:
            for j, e in self.runs(ks):  # one proxy read per run of consecutive slices
                block = np.asarray(self.proxy[:, :, ks[j] : ks[e - 1] + 1], dtype=np.float32)
                out[j:e] = block.reshape(block.shape[:3]).transpose(2, 1, 0)
        except Exception as exc:  # truncated gzip / short file, found only now
            raise InputError(
                f"cannot read NIfTI voxel data ({type(exc).__name__}: {exc})", path=self.path
            ) from exc
        return out


def read_nifti(path: str | Path, modality: str | None = None, stream_above: int | None = None) -> Volume:
    """Read a .nii or .nii.gz file into a :class:`Volume` (scl_slope/scl_inter applied).

    The volume is reoriented to the closest axial orientation (:meth:`Volume.reoriented_axial`), as
    nibabel's ``as_closest_canonical`` does for RAS: z indices then survive writing it as a DICOM series.

    ``modality`` overrides the guess of :func:`infer_modality`; ``metadata["modality_source"]`` records
    which was used. ``stream_above`` (bytes): when the float32 voxels would take more, the volume's array is
    a :class:`NiftiPixels` read a z-range at a time (the modality guess then looks at 16 evenly spaced
    slices). Raises :class:`InputError` for missing, empty, truncated or malformed files and for true
    4-D data.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path=path)
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for bad headers
        raise InputError(f"not a readable NIfTI file ({type(exc).__name__}: {exc})", path=path) from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise InputError(f"not a NIfTI image (nibabel read it as {type(img).__name__})", path=path)
    array: Any = _voxels(img, path, stream_above)
    affine = np.asarray(img.affine, dtype=np.float64)
    spacing, origin, direction = nifti_affine_to_geometry(affine, path)
    mod, how = infer_modality(array, modality)
    header = img.header
    qform_code = int(header["qform_code"]) if "qform_code" in header else 0
    sform_code = int(header["sform_code"]) if "sform_code" in header else 0
    description = (
        header["descrip"].tobytes().split(b"\0")[0].decode("latin-1").strip() if "descrip" in header else ""
    )
    metadata: dict[str, Any] = {
        "source_format": "nifti",
        "modality_source": how,
        "nifti_qform_code": qform_code,
        "nifti_sform_code": sform_code,
        "nifti_description": description,
        "warnings": [],
    }
    if qform_code == 0 and sform_code == 0:
        metadata["warnings"].append("NIfTI has neither qform nor sform: geometry is nibabel's fallback")
    log.debug("read NIfTI %s shape=%s modality=%s (%s)", path.name, array.shape, mod, how)
    volume = Volume(
        array=array,
        spacing=spacing,
        origin=origin,
        direction=direction,
        modality=mod,
        source=path,
        metadata=metadata,
    )
    return volume.reoriented_axial()


def _voxels(img: Any, path: Path, stream_above: int | None) -> NDArray[np.float32] | NiftiPixels:
    """The (z, y, x) float32 voxels of a nibabel image, or a :class:`NiftiPixels` above ``stream_above``."""
    dtype = img.get_data_dtype()
    if dtype.names is not None or dtype.kind == "c":
        raise InputError(f"unsupported NIfTI voxel type {dtype}", path=path)
    shape = tuple(int(n) for n in img.shape)
    gz = path.name.lower().endswith(".gz")
    offset = 0 if gz else int(img.header.get("vox_offset", 0) or 0)
    check_payload(path, shape, dtype.itemsize, path.stat().st_size - offset, gz, "NIfTI")
    if stream_above is not None and len(shape) >= 3 and 4 * int(np.prod(shape)) > stream_above:
        import nibabel as nib

        _check_3d(shape, path)
        # the file stays open while the volume lives: reads in z order then continue where the last one
        # stopped instead of decompressing a .nii.gz from its start each time (closed with the proxy)
        proxy = nib.load(str(path), keep_file_open=True).dataobj  # type: ignore[attr-defined]
        return NiftiPixels(path, proxy, (shape[2], shape[1], shape[0]))
    try:
        data = _squeeze_to_3d(np.asanyarray(img.dataobj), path)
        return np.asarray(data, dtype=np.float32).transpose(2, 1, 0)
    except InputError:
        raise
    except Exception as exc:  # truncated gzip / short file / bad dtype
        raise InputError(f"cannot read NIfTI voxel data ({type(exc).__name__}: {exc})", path=path) from exc


def write_nifti(volume: Volume, path: str | Path, dtype: Any = np.float32) -> Path:
    """Write ``volume`` as NIfTI-1 (gzip-compressed when ``path`` ends in .gz), atomically.

    Geometry goes into both qform and sform (code 1, scanner); values are stored as ``dtype``.
    """
    import nibabel as nib

    path = Path(path)
    if not is_nifti_path(path):
        raise InputError("NIfTI output must end in .nii or .nii.gz", path=path)
    data = np.ascontiguousarray(volume.array.transpose(2, 1, 0)).astype(dtype, copy=False)
    img = nib.Nifti1Image(data, volume_to_nifti_affine(volume))
    img.header.set_xyzt_units(xyz="mm")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    raw = img.to_bytes()
    if path.name.lower().endswith(".gz"):
        raw = gzip.compress(raw, compresslevel=6, mtime=0)
    return write_bytes_atomic(path, raw)
