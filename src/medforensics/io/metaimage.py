"""MetaImage (.mhd + .raw/.zraw, .mha) reading and writing with SimpleITK (the LUNA16 format).

SimpleITK is already LPS. Its array is (z, y, x); its direction is a row-major 3x3 matrix whose columns are
the LPS unit vectors of the ITK axes (x = column, y = row, z = slice), so a :class:`Volume`'s direction is
that matrix with its columns reversed, and its spacing is ITK's spacing reversed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medforensics.errors import InputError
from medforensics.io.nifti import infer_modality
from medforensics.io.payload import check_payload
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

log = get_logger("io.metaimage")

METAIMAGE_SUFFIXES = (".mhd", ".mha")


def is_metaimage_path(path: str | Path) -> bool:
    """True if the file name ends in .mhd or .mha."""
    return str(path).lower().endswith(METAIMAGE_SUFFIXES)


def read_mhd_header(path: str | Path) -> dict[str, str]:
    """The ``Key = Value`` fields of a MetaImage header (up to ElementDataFile); InputError if not one."""
    return _header(Path(path))[0]


def _header(path: Path) -> tuple[dict[str, str], int]:
    """The header fields and the byte offset just after the ElementDataFile line (where LOCAL data begin)."""
    fields: dict[str, str] = {}
    end = 0
    try:
        with path.open("rb") as fh:
            for _ in range(200):
                line = fh.readline(4096)
                if not line:
                    break
                key, sep, value = line.decode("latin-1").partition("=")
                if not sep:
                    raise InputError("not a MetaImage header (line without '=')", path=path)
                fields[key.strip()] = value.strip()
                if key.strip() == "ElementDataFile":
                    end = fh.tell()
                    break
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", path=path) from exc
    if "ElementDataFile" not in fields or "DimSize" not in fields:
        raise InputError("not a MetaImage header (no DimSize/ElementDataFile)", path=path)
    return fields, end


def _check_data_file(path: Path, fields: dict[str, str], header_end: int) -> None:
    """Raise InputError when a detached .mhd points to a missing data file, or when the data (detached, or
    LOCAL after the header of an .mha) cannot hold the voxels the header's DimSize and ElementType need
    (:func:`~medforensics.io.payload.check_payload`)."""
    name = fields["ElementDataFile"]
    if name.upper().startswith("LIST") or "%" in name:
        return
    if name.upper() == "LOCAL":
        data, offset = path, header_end
    else:
        data = Path(name) if Path(name).is_absolute() else path.parent / name
        if not data.is_file():
            raise InputError(f"data file {name!r} named in the header is missing", path=path)
        offset = 0
    dims = _dim_size(path, fields)
    size = _ELEMENT_BYTES.get(fields.get("ElementType", "").upper())
    channels = fields.get("ElementNumberOfChannels", "1")
    head = fields.get("HeaderSize", "0")
    if size is None or not channels.isdigit() or not head.isdigit():
        return
    compressed = fields.get("CompressedData", "False").strip().lower() == "true"
    held = data.stat().st_size - offset - (0 if compressed else int(head))
    shape = [*dims, int(channels)] if int(channels) > 1 else dims
    check_payload(path, shape, size, held, compressed, "MetaImage", data=data)


#: Bytes per element of the MetaImage element types whose size is fixed.
_ELEMENT_BYTES = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
}


def _dim_size(path: Path, fields: dict[str, str]) -> list[int]:
    """The header's DimSize: positive whole numbers, as many as NDims says (InputError otherwise)."""
    raw = fields.get("DimSize", "").split()
    ndims = fields.get("NDims", str(len(raw))).strip()
    if not raw or not all(v.isdigit() and int(v) > 0 for v in raw) or ndims != str(len(raw)):
        why = f"DimSize {' '.join(raw)!r} is not {ndims} positive whole numbers"
        raise InputError(f"bad MetaImage header: {why}", path=path)
    return [int(v) for v in raw]


def read_metaimage(path: str | Path, modality: str | None = None, stream_above: int | None = None) -> Volume:
    """Read a .mhd (with its .raw) or .mha file into a :class:`Volume`.

    ``modality`` overrides the guess of :func:`~medforensics.io.nifti.infer_modality` (LUNA16 scans are CT
    in HU and are recognised as such); ``metadata["modality_source"]`` records which was used.
    ``stream_above`` (bytes): a 3-D image whose float32 voxels would take more gets a
    :class:`~medforensics.io.metaimage_pixels.MetaImagePixels` array, read a z-range at a time (the modality
    guess then looks at 16 evenly spaced slices); layouts it cannot stream are read whole.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path=path)
    fields, header_end = _header(path)
    _check_data_file(path, fields, header_end)
    info = sitk_info(path, "MetaImage")
    array: Any = None
    big = stream_above is not None and 4 * int(np.prod(info.GetSize())) > stream_above
    # compressed data are inflated here even when small: SimpleITK fills data it cannot inflate with zeros
    # and says so only on stderr ("Uncompress failed": a corrupt .zraw read as 99.9 % zeros, session 24)
    compressed = fields.get("CompressedData", "").strip().lower() == "true"
    if (big or compressed) and info.GetDimension() == 3:
        from medforensics.io.metaimage_pixels import metaimage_pixels

        array = metaimage_pixels(path, fields, header_end)
        if array is not None and not big:
            array = np.asarray(array)
    if array is None:
        array = sitk_voxels(info, path)
    volume = sitk_volume(info, array, path, modality, "metaimage")
    log.debug("read MetaImage %s shape=%s modality=%s", path.name, volume.shape, volume.modality)
    return volume


def sitk_info(path: Path, fmt: str) -> Any:
    """A SimpleITK reader that has read the header of ``path`` (a one-component 2-D or 3-D image)."""
    import SimpleITK as sitk

    from medforensics.io._native import native_stderr

    try:
        with native_stderr() as printed:
            info = sitk.ImageFileReader()
            info.SetFileName(str(path))
            info.ReadImageInformation()
    except RuntimeError as exc:
        why = sitk_reason(exc, path, "header", printed)
        raise InputError(f"SimpleITK cannot read it ({why})", path=path) from exc
    if info.GetNumberOfComponents() != 1:
        raise InputError(f"{info.GetNumberOfComponents()}-component pixels are not supported", path=path)
    if info.GetDimension() not in (2, 3):
        dim = info.GetDimension()
        raise InputError(f"{dim}-D {fmt} is not supported (one 3-D volume expected)", path=path)
    return info


def sitk_voxels(info: Any, path: Path) -> NDArray[np.float32]:
    """All voxels of the image whose header ``info`` read, as (z, y, x) float32 (a 2-D image: one slice)."""
    import SimpleITK as sitk

    from medforensics.io._native import native_stderr

    try:
        with native_stderr() as printed:
            image = info.Execute()  # the header already read: only the voxels now
    except RuntimeError as exc:
        why = sitk_reason(exc, path, "voxels", printed)
        raise InputError(f"SimpleITK cannot read it ({why})", path=path) from exc
    array = np.asarray(sitk.GetArrayFromImage(image), dtype=np.float32)
    return array[None] if info.GetDimension() == 2 else array


def sitk_volume(info: Any, array: Any, path: Path, modality: str | None, source_format: str) -> Volume:
    """The axial :class:`Volume` of voxels read by SimpleITK with the geometry of its reader ``info``."""
    import SimpleITK as sitk

    spacing_itk, origin_itk, direction_itk = sitk_geometry(info)
    if any(s <= 0 for s in spacing_itk):
        raise InputError(f"non-positive element spacing {tuple(spacing_itk)}", path=path)
    mod, how = infer_modality(array, modality)
    volume = Volume(
        array=array,
        spacing=tuple(float(s) for s in spacing_itk[::-1]),  # type: ignore[arg-type]
        origin=tuple(float(o) for o in origin_itk),  # type: ignore[arg-type]
        direction=sitk_direction_to_volume(direction_itk),
        modality=mod,
        source=path,
        metadata={
            "source_format": source_format,
            "modality_source": how,
            "pixel_type": sitk.GetPixelIDValueAsString(info.GetPixelID()),
            "warnings": [],
        },
    )
    return volume.reoriented_axial()


def sitk_reason(
    exc: RuntimeError, path: Path | None = None, stage: str = "header", printed: Sequence[str] = ()
) -> str:
    """The last line of a SimpleITK error, cut to 200 characters. ITK's MetaImage reader ends a header it
    cannot parse (a short ElementSpacing, NDims 4 with 3 sizes...) with the errno left over, "No such file
    or directory", for a file that exists: the first line it ``printed`` on stderr says why, or the reason
    is said as what it means."""
    text = str(exc).strip()
    reason = (text.splitlines()[-1] if text else type(exc).__name__)[:200]
    if path is not None and "No such file or directory" in reason and Path(path).is_file():
        what = "header cannot be parsed" if stage == "header" else "voxel data cannot be read"
        if printed:
            return f"its {what}: {printed[0][:150]}"
        if stage == "header":
            return f"its {what}: a field missing or malformed"
        return f"its {what}: missing or shorter than the header says"
    return reason


def sitk_geometry(info: Any) -> tuple[tuple[float, ...], tuple[float, ...], NDArray[np.float64]]:
    """ITK spacing, origin and 3x3 direction of a header; a 2-D image is one slice along +z."""
    if info.GetDimension() == 2:
        direction = np.eye(3)
        direction[:2, :2] = np.asarray(info.GetDirection(), dtype=np.float64).reshape(2, 2)
        return (*info.GetSpacing(), 1.0), (*info.GetOrigin(), 0.0), direction
    direction = np.asarray(info.GetDirection(), dtype=np.float64).reshape(3, 3)
    return tuple(info.GetSpacing()), tuple(info.GetOrigin()), direction


def volume_to_sitk(volume: Volume, dtype: Any = np.float32) -> Any:
    """A SimpleITK image with the volume's pixels (as ``dtype``) and geometry."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array.astype(dtype, copy=False)))
    image.SetSpacing([float(s) for s in volume.spacing[::-1]])
    image.SetOrigin([float(o) for o in volume.origin])
    image.SetDirection([float(v) for v in np.asarray(volume.direction)[:, ::-1].ravel()])
    return image


def write_metaimage(
    volume: Volume, path: str | Path, dtype: Any = np.float32, compress: bool = False
) -> Path:
    """Write ``volume`` as .mha (one file) or .mhd + .raw (.zraw when compressed), atomically.

    The files are written in a temporary folder beside the target and renamed into place (data file first).
    """
    import SimpleITK as sitk

    path = Path(path)
    if not is_metaimage_path(path):
        raise InputError("MetaImage output must end in .mhd or .mha", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = volume_to_sitk(volume, dtype)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        sitk.WriteImage(image, str(tmpdir / path.name), useCompression=compress)
        written = sorted(tmpdir.iterdir(), key=lambda p: p.suffix.lower() in METAIMAGE_SUFFIXES)
        for item in written:  # data file(s) first, header last
            os.replace(item, path.parent / item.name)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return path


def sitk_direction_to_volume(direction_itk: NDArray[np.float64]) -> NDArray[np.float64]:
    """Convert a row-major ITK direction (columns = x, y, z axes) to a Volume direction (columns z, y, x)."""
    return np.asarray(direction_itk, dtype=np.float64).reshape(3, 3)[:, ::-1].copy()
