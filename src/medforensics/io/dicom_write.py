"""Write a :class:`Volume` as a DICOM series that keeps the source metadata and geometry.

This is what an attacker writes back after tampering: every slice keeps its source header (UIDs,
position, rescale, window, private tags); only the pixels change, converted back from physical units
with the slice's own RescaleSlope/Intercept. Compressed sources are written uncompressed (Explicit VR
Little Endian), or with ``keep_encoding`` in their own lossless syntax where pydicom has an encoder for it
(:data:`REENCODED`: deflate, RLE, JPEG-LS and JPEG 2000 lossless; never a lossy one, whose
LossyImageCompression "01" the written header keeps). A volume without source datasets (NIfTI, say)
becomes a minimal CT or secondary-capture series built from its geometry.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from medforensics._atomic import atomic_path
from medforensics.errors import InputError
from medforensics.io.dicom_frames import FrameInfo, frame_infos, stored_range
from medforensics.io.volume import Volume
from medforensics.logging import get_logger

__all__ = ["write_dicom_series"]

log = get_logger("io.dicom_write")

_OUTPUT_NAME = re.compile(r"^IM\d{6,}\.dcm$")
_CT_INTERCEPT = -1024.0
_SC_IMAGE = UID("1.2.840.10008.5.1.4.1.1.7")
_CT_IMAGE = UID("1.2.840.10008.5.1.4.1.1.2")
_EMPTY_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PositionReferenceIndicator",
)


def _check_target(out_dir: Path, volume: Volume) -> None:
    """Refuse to overwrite inputs or folders that are not earlier outputs of this writer."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("output exists and is not a folder", path=out_dir)
    target = out_dir.resolve()
    sources = [Path(f) for f in volume.metadata.get("files", [])]
    if volume.source is not None:
        sources.append(Path(volume.source))
    for src in sources:
        r = src.resolve()
        if r == target or target in r.parents:
            raise InputError("output folder holds the input files; choose another folder", path=out_dir)
    if out_dir.is_dir():
        foreign = [p.name for p in out_dir.iterdir() if not _OUTPUT_NAME.match(p.name)]
        if foreign:
            raise InputError(
                f"output folder is not empty ({len(foreign)} other file(s), e.g. {foreign[0]}); "
                "choose an empty or new folder",
                path=out_dir,
            )


def _storage_dtype(ds: Dataset) -> np.dtype[Any]:
    bits = int(ds.get("BitsAllocated") or 16)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    if bits <= 8:
        return np.dtype(np.int8 if signed else np.uint8)
    if bits <= 16:
        return np.dtype("<i2" if signed else "<u2")
    return np.dtype("<i4" if signed else "<u4")


def _make_monochrome(ds: Dataset) -> None:
    """Colour and palette sources were read as luminance: describe the written pixels as MONOCHROME2."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        return
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    colour = [
        e.keyword
        for e in ds
        if e.keyword and ("PaletteColor" in e.keyword or e.keyword == "PlanarConfiguration")
    ]
    for kw in colour:
        del ds[kw]


def _to_stored(values: NDArray[np.float32], ds: Dataset, info: FrameInfo) -> NDArray[Any]:
    """Physical values -> stored values: undo the rescale, round, re-invert MONOCHROME1, clip."""
    lo, hi = stored_range(ds)
    v = (values.astype(np.float64) - info.intercept) / (info.slope or 1.0)
    v = np.rint(v)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        v = (lo + hi) - v
    return np.clip(v, lo, hi)


def _set_pixels(ds: Dataset, stored: NDArray[Any]) -> None:
    bits = int(ds.get("BitsAllocated") or 16)
    if bits == 1:
        data = pydicom.pixels.pack_bits(stored.astype(np.uint8))
    else:
        data = np.ascontiguousarray(stored.astype(_storage_dtype(ds))).tobytes()
    if len(data) % 2:
        data += b"\x00"
    ds.add_new(0x7FE00010, "OB" if bits <= 8 else "OW", data)


def _finish_meta(ds: Dataset) -> None:
    """Point the file meta at this instance and pick an uncompressed little-endian syntax."""
    old = getattr(ds, "file_meta", None)
    meta = FileMetaDataset()
    ts = UID(str(old.get("TransferSyntaxUID"))) if old is not None and "TransferSyntaxUID" in old else None
    try:
        native = ts is not None and ts.is_transfer_syntax and not ts.is_compressed and not ts.is_deflated
    except ValueError:
        native = False
    if not native or ts is None or not ts.is_little_endian:
        ts = ExplicitVRLittleEndian
    meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if ts == ImplicitVRLittleEndian else ExplicitVRLittleEndian
    )
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", _SC_IMAGE)
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID") or generate_uid()
    if old is not None:
        for kw in ("SourceApplicationEntityTitle",):
            if kw in old:
                meta[kw] = old[kw]
    ds.file_meta = meta
    for elem in ds.iterall():  # decode every raw element so the new encoding can be written
        _ = elem.value


#: Lossless compressed transfer syntaxes ``keep_encoding`` writes again (when pydicom's encoder is installed).
REENCODED = frozenset(
    {
        "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
        "1.2.840.10008.1.2.5",  # RLE Lossless
        "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
        "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    }
)


def source_syntax(ds: Dataset) -> UID | None:
    """The transfer syntax ``ds`` was read in (None when its file meta does not say)."""
    meta = getattr(ds, "file_meta", None)
    return UID(str(meta.TransferSyntaxUID)) if meta is not None and "TransferSyntaxUID" in meta else None


def _reencode(ds: Dataset, ts: UID | None) -> None:
    """Encode ``ds`` (native pixels) in the source's syntax ``ts`` when it is in :data:`REENCODED` and an
    encoder is installed; otherwise, or when the encoder refuses the pixels, ``ds`` stays uncompressed."""
    if ts is None or str(ts) not in REENCODED:
        return
    if ts.is_deflated:
        ds.file_meta.TransferSyntaxUID = ts
        return
    try:
        if not pydicom.pixels.get_encoder(ts).is_available:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.compress(ts, generate_instance_uid=False)
    except (ValueError, RuntimeError, NotImplementedError, TypeError) as exc:
        log.warning("kept uncompressed, %s refused: %s", ts.name, " ".join(str(exc).split())[:160])


def _frame_map(volume: Volume, sources: list[Dataset], explicit: bool) -> list[dict[int, int]]:
    """For each source dataset: frame index -> array slice index."""
    n = volume.shape[0]
    mapping: list[dict[int, int]] = [{} for _ in sources]
    fs = None if explicit else volume.metadata.get("frame_sources")
    if fs is not None and len(fs) == n:
        for k, (i, f) in enumerate(fs):
            if not 0 <= int(i) < len(sources):
                raise InputError(f"frame source {i} out of range for {len(sources)} dataset(s)")
            mapping[int(i)][int(f)] = k
    elif len(sources) == n:
        for k in range(n):
            mapping[k][0] = k
    elif len(sources) == 1:
        mapping[0] = {k: k for k in range(n)}
    else:
        raise InputError(f"{len(sources)} source datasets for {n} slices: cannot pair them")
    return mapping


def _from_sources(
    volume: Volume, sources: list[Dataset], explicit: bool, keep_encoding: bool = False
) -> list[Dataset]:
    out: list[Dataset] = []
    for i, (src, frames) in enumerate(zip(sources, _frame_map(volume, sources, explicit), strict=True)):
        ds = copy.deepcopy(src)
        ts = source_syntax(ds)
        infos = frame_infos(ds)
        if set(frames) != set(range(len(infos))):
            raise InputError(
                f"source dataset {i} has {len(infos)} frame(s) but {len(frames)} slice(s) map to it"
            )
        shape = (int(ds.Rows), int(ds.Columns))
        if volume.shape[1:] != shape:
            raise InputError(f"array slices are {volume.shape[1:]}, source images are {shape}")
        _make_monochrome(ds)
        stored = np.stack([_to_stored(volume.array[frames[f]], ds, infos[f]) for f in range(len(infos))])
        _set_pixels(ds, stored if len(infos) > 1 else stored[0])
        _finish_meta(ds)
        if keep_encoding:
            _reencode(ds, ts)
        out.append(ds)
    return out


def _synthesize(volume: Volume) -> list[Dataset]:
    """A minimal CT (HU, slope 1, intercept -1024, signed 16 bit) or secondary-capture series."""
    is_ct = volume.modality == "CT"
    arr = volume.array
    if is_ct:
        slope, intercept, signed = 1.0, _CT_INTERCEPT, True  # stored = HU + 1024, padding below -1024 kept
    elif np.all(arr == np.rint(arr)) and arr.min() >= -32768 and arr.max() <= 32767:
        slope, intercept, signed = 1.0, 0.0, True
    else:
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        slope, intercept, signed = (max(hi - lo, 1e-6) / 65535.0), lo, False
    meta = volume.metadata
    study = str(meta.get("study_uid") or generate_uid())
    series = str(meta.get("series_uid") or generate_uid())
    frame_of_ref = str(meta.get("frame_of_reference_uid") or generate_uid())
    sops = list(meta.get("sop_instance_uids") or [])
    if len(sops) != volume.shape[0] or not all(sops):
        sops = [generate_uid() for _ in range(volume.shape[0])]
    row, col = volume.direction[:, 2], volume.direction[:, 1]
    sz, sy, sx = volume.spacing
    out: list[Dataset] = []
    for k in range(volume.shape[0]):
        ds = Dataset()
        ds.SOPClassUID = _CT_IMAGE if is_ct else _SC_IMAGE
        ds.SOPInstanceUID = sops[k]
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_ref
        ds.Modality = volume.modality
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"] if is_ct else ["DERIVED", "SECONDARY"]
        for kw in _EMPTY_TYPE2:
            setattr(ds, kw, "")
        ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, k + 1
        ds.SeriesDescription = str(meta.get("series_description") or "medforensics export")
        if is_ct:
            ds.PatientPosition = "HFS"  # assumed: the geometry itself is in patient coordinates
            ds.KVP, ds.AcquisitionNumber, ds.Laterality = "", "", ""
        ds.Manufacturer = "medforensics"
        if not is_ct:
            ds.ConversionType = "WSD"
        ds.ImagePositionPatient = [round(float(v), 6) for v in volume.index_to_patient([k, 0, 0])]
        ds.ImageOrientationPatient = [round(float(v), 8) for v in (*row, *col)]
        ds.PixelSpacing = [round(sy, 6), round(sx, 6)]
        ds.SliceThickness = round(sz, 6)
        ds.SpacingBetweenSlices = round(sz, 6)
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleIntercept, ds.RescaleSlope = f"{intercept:.10g}", f"{slope:.10g}"
        if is_ct:
            ds.RescaleType = "HU"
        for key, kw in (("window_center", "WindowCenter"), ("window_width", "WindowWidth")):
            if volume.metadata.get(key) is not None:
                setattr(ds, kw, f"{float(volume.metadata[key]):.6g}")
        info = frame_infos(ds)[0]
        _set_pixels(ds, _to_stored(arr[k], ds, info))
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        _finish_meta(ds)
        out.append(ds)
    return out


def _file_names(datasets: list[Dataset]) -> list[str]:
    numbers = [ds.get("InstanceNumber") for ds in datasets]
    ints = [int(n) if n not in (None, "") else None for n in numbers]
    if None in ints or len(set(ints)) != len(ints) or min(i for i in ints if i is not None) < 0:
        ints = list(range(1, len(datasets) + 1))
    return [f"IM{n:06d}.dcm" for n in ints]


def write_dicom_series(
    volume: Volume,
    out_dir: str | Path,
    *,
    datasets: Sequence[Dataset] | None = None,
    new_uids: bool = False,
    keep_encoding: bool = False,
) -> list[Path]:
    """Write ``volume`` as a DICOM series in ``out_dir`` (atomically); return the files in slice order.

    ``datasets`` overrides ``volume.datasets`` as the source headers (one per slice, or one multi-frame
    dataset). With ``new_uids`` every instance gets a new SOPInstanceUID and the series a new
    SeriesInstanceUID (the StudyInstanceUID is kept). With ``keep_encoding`` a source in a lossless
    compressed syntax is written in that syntax where possible (see module docs). Inputs are never modified.
    """
    out = Path(out_dir)
    _check_target(out, volume)
    sources = list(datasets) if datasets is not None else list(volume.datasets)
    items = (
        _from_sources(volume, sources, datasets is not None, keep_encoding)
        if sources
        else _synthesize(volume)
    )
    if new_uids and sources:
        series_uid = generate_uid()
        for ds in items:
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    names = _file_names(items)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name, ds in zip(names, items, strict=True):
            with warnings.catch_warnings():  # pydicom's value-validation chatter about source headers
                warnings.simplefilter("ignore")
                pydicom.dcmwrite(tmp / name, ds, enforce_file_format=True)
    log.info("wrote %d DICOM file(s) of series %s", len(items), items[0].get("SeriesInstanceUID"))
    return [out / name for name in names]
