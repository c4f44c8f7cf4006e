"""Pixel decoding of DICOM files, and :class:`DicomPixels`: a series' pixels decoded on demand.

:func:`decode_slices` turns the frames of a series (in array order, see :mod:`medforensics.io.dicom`)
into physical units (rescale slope/intercept per frame; MONOCHROME1 inverted), reading each file once.
:class:`DicomPixels` stands in for a long series' ``Volume.array``: it holds only the file list and the
frame order, and decodes the z-range each access asks for (``pixels[z0:z1]``, ``pixels[k]``,
``pixels[:, ::4, ::4]``), so a scan that walks the series slab by slab never holds it whole.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import UID

from medforensics.errors import InputError
from medforensics.io.dicom_frames import FrameInfo, frame_count, luminance, stored_range
from medforensics.io.lazy import LazySlices

if TYPE_CHECKING:
    from medforensics.io.dicom_layout import SliceRef


def transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is None:  # preamble-less files: pydicom guessed the encoding
        implicit = getattr(ds, "is_implicit_VR", True)
        little = getattr(ds, "is_little_endian", True)
        ts = (
            pydicom.uid.ImplicitVRLittleEndian
            if implicit
            else (pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian)
        )
    return UID(str(ts))


def _is_native(ts: UID) -> bool:
    """True for an uncompressed transfer syntax; unknown or private syntaxes are not native."""
    try:
        return not ts.is_compressed and ts.is_transfer_syntax
    except ValueError:
        return False


def _ts_label(ts: UID) -> str:
    return f"{ts.name} ({ts})" if ts.name != ts else str(ts)


def check_frames_fit(ds: Dataset, path: str | Path) -> None:
    """InputError when the file at ``path`` is too small for the frames its header claims (each
    uncompressed frame needs Rows x Columns x samples x bits, a compressed one at least a byte), checked
    from the file's size before any per-frame work: a NumberOfFrames of 100000 in a one-frame file made the
    reader build 100000 frame headers per file (session 24)."""
    frames = frame_count(ds)
    if frames <= 1:
        return
    try:
        size = Path(path).stat().st_size
    except OSError:
        return
    per = 1
    if _is_native(transfer_syntax(ds)):
        bits = int(ds.get("BitsAllocated") or 8)
        spp = int(ds.get("SamplesPerPixel") or 1)
        per = max(1, int(ds.get("Rows") or 0) * int(ds.get("Columns") or 0) * spp * bits // 8)
    if frames * per > size:
        raise InputError(
            f"NumberOfFrames {frames} does not fit in the file's {size} bytes: a malformed header", path=path
        )


def check_pixel_length(ds: Dataset, path: str | Path) -> None:
    """InputError when uncompressed Pixel Data is shorter than Rows x Columns x frames x samples need
    (a truncated or corrupt file); compressed data are checked by their decoder."""
    if "PixelData" not in ds or not _is_native(transfer_syntax(ds)):
        return
    frames = frame_count(ds)
    spp = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.get("BitsAllocated") or 8)
    n_px = int(ds.get("Rows") or 0) * int(ds.get("Columns") or 0) * frames * spp
    expected = (n_px + 7) // 8 if bits == 1 else n_px * (bits // 8)
    got = len(ds.PixelData)
    if got < expected:
        raise InputError(
            f"inconsistent pixel data length: {got} bytes, header implies {expected} "
            f"({ds.get('Rows')}x{ds.get('Columns')}x{frames} frames, {bits} bits): truncated or corrupt",
            path=path,
        )


def _decode(ds: Dataset, path: Path) -> NDArray[Any]:
    """Pixels as stored (frames, rows, cols); colour reduced to luminance."""
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        sop = UID(str(ds.get("SOPClassUID", "")))
        what = f" ({sop.name})" if "Rows" not in ds and sop else ""
        raise InputError(f"no Pixel Data{what}", path=path)
    for kw in ("Rows", "Columns"):
        if not ds.get(kw):
            raise InputError(f"no {kw} in the image header", path=path)
    ts = transfer_syntax(ds)
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    if "TransferSyntaxUID" not in ds.file_meta:  # preamble-less file: tell the decoder what was read
        ds.file_meta.TransferSyntaxUID = ts
    frames = frame_count(ds)
    spp = int(ds.get("SamplesPerPixel") or 1)
    check_pixel_length(ds, path)
    if not _is_native(ts):
        try:
            decoder = pydicom.pixels.get_decoder(ts)
        except NotImplementedError as exc:
            raise InputError(f"unsupported transfer syntax {_ts_label(ts)}", path=path) from exc
        if not decoder.is_available:
            raise InputError(f"no decoder installed for transfer syntax {_ts_label(ts)}", path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = pydicom.pixels.pixel_array(ds)
    except Exception as exc:
        msg = " ".join(str(exc).split())[:200]
        raise InputError(f"cannot decode pixel data ({_ts_label(ts)}): {msg}", path=path) from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        try:
            arr = pydicom.pixels.apply_color_lut(arr, ds)
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # no or a broken lookup table
            raise InputError(
                f"cannot apply the palette: {' '.join(str(exc).split())[:200]}", path=path
            ) from exc
        spp = 3
    if spp > 1:
        arr = luminance(arr)
    if frames == 1 and arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != frames:
        raise InputError(f"decoded pixel data has shape {arr.shape}, expected {frames} frames", path=path)
    return arr


def _to_physical(stored: NDArray[Any], ds: Dataset, info: FrameInfo) -> NDArray[np.float32]:
    out = stored.astype(np.float32)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        lo, hi = stored_range(ds)
        out = np.float32(lo + hi) - out
    if info.slope != 1.0 or info.intercept != 0.0:
        out = out * np.float32(info.slope) + np.float32(info.intercept)
    return out


def decode_slices(
    out: NDArray[np.float32],
    ks: Sequence[int],
    slices: Sequence[SliceRef],
    paths: Sequence[Path],
    open_ds: Callable[[int], Dataset],
    done: Callable[[Dataset], Any] | None = None,
) -> None:
    """Decode array slices ``ks`` of a series into ``out[0], out[1], ...`` in physical units.

    Each file is opened (``open_ds(file index)``) and decoded once, in file and frame order (compressed
    files on all cores: :mod:`medforensics.io.decode_pool`); ``done`` is called on a file's dataset when it
    is no longer needed (to free its pixel bytes).
    """
    from medforensics.io.decode_pool import decoded

    order = sorted(range(len(ks)), key=lambda j: (slices[ks[j]].ds_index, slices[ks[j]].info.frame))
    files = list(dict.fromkeys(slices[ks[j]].ds_index for j in order))  # each once, in order
    stream = decoded(files, paths, open_ds)
    current: tuple[int, Dataset, NDArray[Any]] | None = None
    for j in order:
        s = slices[ks[j]]
        if current is None or current[0] != s.ds_index:
            if current is not None and done is not None:
                done(current[1])
            current = next(stream)
            n_headers = frame_count(current[1])  # frame_infos(ds) gives one per frame
            if n_headers != current[2].shape[0]:
                raise InputError(
                    f"{n_headers} frame headers for {current[2].shape[0]} frames", path=paths[s.ds_index]
                )
        img = _to_physical(current[2][s.info.frame], current[1], s.info)
        if img.shape == out.shape[1:]:
            out[j] = img
        elif img.shape[0] <= out.shape[1] and img.shape[1] <= out.shape[2]:
            out[j].fill(img.min())  # a projection series' smaller image: top left, padded with its minimum
            out[j, : img.shape[0], : img.shape[1]] = img
        else:
            raise InputError(
                f"decoded image {img.shape} exceeds the series' {out.shape[1:]}", path=paths[s.ds_index]
            )
    if current is not None and done is not None:
        done(current[1])


class DicomPixels(LazySlices):
    """The float32 pixels of a DICOM series, decoded from its files at each access (see module docs and
    :class:`~medforensics.io.lazy.LazySlices`). A file changed or removed after the series was opened is an
    :class:`InputError` naming it."""

    def __init__(
        self, paths: Sequence[Path], slices: Sequence[SliceRef], shape: tuple[int, int, int]
    ) -> None:
        super().__init__(shape)
        self.paths = list(paths)
        self.slices = list(slices)

    def _open(self, i: int) -> Dataset:
        from medforensics.io.dicom import read_dataset

        return read_dataset(self.paths[i])  # its pixels are decoded at once: one read of the file

    def _read(self, ks: Sequence[int]) -> NDArray[np.float32]:
        out = np.empty((len(ks), *self.shape[1:]), np.float32)
        decode_slices(out, ks, self.slices, self.paths, self._open)
        return out


#: Transfer syntaxes whose encoding always loses information (JPEG baseline/extended, MPEG and HEVC video).
LOSSY_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}
    | {f"1.2.840.10008.1.2.4.{n}{s}" for n in range(100, 109) for s in ("", ".1")}
)
#: Transfer syntaxes that may be lossy or not: the codestream says (JPEG-LS NEAR, the JPEG 2000 wavelet).
MAYBE_LOSSY_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.203"}
)


def _segments(code: bytes, start: int, until: int) -> Iterator[tuple[int, int]]:
    """``(marker, offset)`` of the marker segments of a JPEG / JPEG 2000 codestream from ``start`` up to
    and including marker ``until`` (each segment: 0xFF, marker, a 2-byte big-endian length)."""
    pos = start
    while pos + 4 <= len(code) and code[pos] == 0xFF:
        marker = code[pos + 1]
        yield marker, pos
        if marker == until:
            return
        pos += 2 + int.from_bytes(code[pos + 2 : pos + 4], "big")


def codestream_loss(ts: UID | str, frame: bytes) -> str | None:
    """How the codestream ``frame`` of transfer syntax ``ts`` (a :data:`MAYBE_LOSSY_SYNTAXES` one) lost
    information, or None when it is lossless or cannot be parsed: JPEG-LS with NEAR > 0, JPEG 2000 with the
    irreversible 9/7 wavelet."""
    if str(ts) == "1.2.840.10008.1.2.4.81" and frame[:2] == b"\xff\xd8":
        for marker, pos in _segments(frame, 2, 0xDA):  # start of scan: Ls, Ns, Ns x (Ci, Tm), NEAR, ILV
            if marker == 0xDA and pos + 5 < len(frame):
                near_at = pos + 5 + 2 * frame[pos + 4]
                near = frame[near_at] if near_at < len(frame) else 0
                return f"JPEG-LS NEAR={near}" if near else None
        return None
    if frame[:2] == b"\xff\x4f":
        for marker, pos in _segments(frame, 2, 0x52):  # COD: Scod, SGcod (4 bytes), SPcod: ..., transform
            if marker == 0x52 and pos + 13 < len(frame):
                return "JPEG 2000 irreversible (9/7) wavelet" if frame[pos + 13] == 0 else None
    return None


def _first_fragment(path: Path, ds: Dataset) -> tuple[bytes, int] | None:
    """The first fragment of the encapsulated Pixel Data of ``ds`` (read from ``path`` with the pixel data
    deferred) and the bytes from there to the end of the file, reading that fragment only."""
    elem = ds.get_item(0x7FE00010, keep_deferred=True)
    tell = getattr(elem, "value_tell", None)
    if tell is None:
        return None
    with path.open("rb") as fh:
        fh.seek(int(tell))
        fragments = pydicom.encaps.generate_fragments(fh)
        next(fragments, None)  # the Basic Offset Table
        first = next(fragments, None)
        size = fh.seek(0, 2) - int(tell)
    return (first, size) if first else None


def lossy_encoding(path: str | Path) -> tuple[str, float | None] | None:
    """``(how, ratio)`` when the DICOM file at ``path`` is stored with a lossy encoding (its transfer syntax,
    or what the codestream of its first fragment says, see :func:`codestream_loss`); ``ratio`` is about the
    uncompressed size of its pixels over the encapsulated bytes. Only the header and that fragment are
    read. None for a lossless or unreadable file."""
    from medforensics.io.dicom import read_dataset

    try:
        ds = read_dataset(path, header_only=True)
        ts = transfer_syntax(ds)
        if str(ts) not in LOSSY_SYNTAXES | MAYBE_LOSSY_SYNTAXES:
            return None
        found = _first_fragment(Path(path), read_dataset(path, defer_bulk=True))
    except (InputError, OSError, ValueError, TypeError, KeyError):
        return None
    if found is None:
        return None
    how = _ts_label(ts) if str(ts) in LOSSY_SYNTAXES else codestream_loss(ts, found[0])
    if how is None:
        return None
    spp, bits = int(ds.get("SamplesPerPixel") or 1), int(ds.get("BitsAllocated") or 16)
    raw = int(ds.get("Rows") or 0) * int(ds.get("Columns") or 0) * spp * bits // 8 * frame_count(ds)
    return how, (raw / found[1] if raw and found[1] > 0 else None)
