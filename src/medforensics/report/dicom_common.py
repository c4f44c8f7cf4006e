"""Shared pieces of the DICOM SR and SEG writers: source references, tracking UIDs, file naming."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from medforensics._atomic import atomic_path
from medforensics.errors import InputError, MedforensicsError, OutputError
from medforensics.io.volume import Volume
from medforensics.logging import get_logger
from medforensics.report.codes import coding_scheme_identification
from medforensics.scan.result import Finding, ScanReport, SeriesResult

log = get_logger("report.dicom")

#: Type 2 Patient / General Study attributes highdicom copies from the first source image.
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)
_UNSAFE = re.compile(r"[^0-9A-Za-z.\-]+")


#: Why a series read from NIfTI, MetaImage, NRRD or an image file gets no SR or SEG.
NOT_DICOM = "not DICOM: nothing to reference"


def require_dicom(series: SeriesResult, volume: Volume | None) -> Volume:
    """The volume if it came from DICOM files; else :class:`InputError` naming the series."""
    if series.verdict == "error":
        raise InputError(f"series was not scanned ({series.error or 'error'})", path=series.path)
    if volume is None:
        raise InputError("no volume given for this series", path=series.path)
    if volume.metadata.get("source_format") != "dicom" or not volume.datasets:
        fmt = volume.metadata.get("source_format") or "non-DICOM"
        raise InputError(f"input is {fmt}, {NOT_DICOM}", path=series.path)
    if not volume.metadata.get("study_uid"):
        raise InputError("source DICOM has no StudyInstanceUID", path=series.path)
    return volume


def reference_datasets(datasets: Sequence[Dataset]) -> list[Dataset]:
    """Copies of the (pixel-less) source headers, with empty Type 2 attributes highdicom expects.

    highdicom reads Rows/Columns/geometry and the Patient/Study attributes but not Pixel Data; a source
    header may lack some Type 2 attributes (an empty value is what the standard asks for then). The
    given datasets are never modified.
    """
    out: list[Dataset] = []
    for ds in datasets:
        # a new dataset holding the same elements (highdicom only reads them): what is added below goes
        # into it alone. A deep copy cost 0.17 s of a 60-slice series' 0.4 s SR (session 71)
        item = Dataset()
        item.update(ds)
        if hasattr(ds, "file_meta"):
            item.file_meta = ds.file_meta
        for keyword in _TYPE2_COPIED:
            if keyword not in item:
                setattr(item, keyword, "")
        out.append(item)
    return out


def ranked_findings(series: SeriesResult) -> list[Finding]:
    """Findings by score, highest first (the JSON order): rank ``k`` is index ``k - 1``."""
    return sorted(series.findings, key=lambda f: -float(f.score))


def tracking_uid(series: SeriesResult, rank: int, finding: Finding) -> str:
    """A UID for one finding, the same in the SR and the SEG of the same scan result."""
    sources = [series.series_uid or series.path, str(rank), finding.type, repr(finding.bbox_voxel)]
    return str(generate_uid(entropy_srcs=sources))


def clipped_box(finding: Finding, shape: tuple[int, int, int]) -> tuple[int, int, int, int, int, int] | None:
    """``bbox_voxel`` clipped to the array (None when absent or empty after clipping)."""
    if finding.bbox_voxel is None:
        return None
    z0, y0, x0, z1, y1, x1 = (int(v) for v in finding.bbox_voxel)
    lo = [max(0, v) for v in (z0, y0, x0)]
    hi = [min(n, v) for n, v in zip(shape, (z1, y1, x1), strict=True)]
    if any(h <= low for low, h in zip(lo, hi, strict=True)):
        return None
    return lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]


def declare_private_scheme(ds: Dataset) -> None:
    """Add the Coding Scheme Identification Sequence item of our private codes."""
    ds.CodingSchemeIdentificationSequence = [coding_scheme_identification()]


def save_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` as a DICOM Part 10 file, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's value-validation chatter about copied source values
        pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
    return path


def build_and_save(
    kind: str, build: Callable[[], Dataset], series: SeriesResult, path: str | Path
) -> tuple[Dataset, Path]:
    """Build one DICOM object and write it atomically; highdicom's complaints about odd headers become
    one :class:`InputError` naming the series (``kind``: SR, SEG)."""
    try:
        ds = build()
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:  # highdicom on odd headers
        raise InputError(f"cannot build the {kind}: {type(exc).__name__}: {exc}", path=series.path) from exc
    return ds, save_dataset(ds, path)


def output_name(index: int, series: SeriesResult, kind: str) -> str:
    """``003_<series uid>_<kind>.dcm`` (the series index keeps copies of one series apart)."""
    uid = _UNSAFE.sub("_", series.series_uid or "series")[:64]
    return f"{index:03d}_{uid}_{kind}.dcm"


def volume_for(
    series: SeriesResult, volumes: Mapping[str, Volume] | None, pixels: bool = True
) -> Volume | None:
    """The series' volume from ``volumes`` keyed by ``SeriesResult.key`` (as :func:`scan_paths` returns
    them), else by its path or series UID (a caller's own mapping). ``pixels`` False: a writer that needs
    the headers and geometry only; volumes read again on access (a scan's
    :class:`~medforensics.scan.volumes.LazyVolumes`) then leave the pixels undecoded."""
    if not volumes:
        return None
    headers_only = None if pixels else getattr(volumes, "without_pixels", None)
    if series.key and headers_only is not None:
        return headers_only(series.key)
    if series.key:
        return volumes.get(series.key)  # a folder's several series share its path: never guess by it
    volume = volumes.get(series.path)
    if volume is None and series.series_uid:
        volume = volumes.get(series.series_uid)
    return volume


#: Why an authentic series gets no SEG (``report.dicom_seg.write_seg``): expected, so the notes sum these
#: series up in one line instead of one line each.
NO_REGION = "no finding with a region to segment"


def _expected_skip(series: SeriesResult, exc: MedforensicsError) -> str | None:
    """Why ``series`` was expected to get no file, in words for the summary note (None: a reason of its
    own): an authentic series with no located finding or not read from DICOM, or a series the scan did
    not assess (a localizer, dose screen, reformat or thick series: ``SeriesResult.not_assessed``)."""
    if series.verdict == "authentic" and exc.reason == NO_REGION:
        return f"authentic series: {NO_REGION}"
    if series.verdict == "authentic" and exc.reason.endswith(NOT_DICOM):  # a flagged one is named
        return f"authentic series read from NIfTI, MetaImage, NRRD or image files: {NOT_DICOM}"
    if series.not_assessed:
        return (
            "series not assessed (localizers, reformats, thick slices, modalities no detector covers...: "
            "the scan says why)"
        )
    return None


def write_for_report(
    report: ScanReport,
    volumes: Mapping[str, Volume] | None,
    out_dir: str | Path,
    kind: str,
    write_one: Callable[[SeriesResult, Volume, Path], Path | list[Path]],
    notes: list[str] | None,
    precheck: Callable[[SeriesResult], None] | None = None,
) -> list[Path]:
    """Run ``write_one`` for every series; a series that cannot get one is noted, the rest go on.

    Each series skipped for a reason of its own gets a note naming it (in series order); authentic series
    with nothing to write, and series the scan did not assess, are counted in one note per kind instead.
    Every skipped series is logged (``-v``). ``precheck(series)`` raises the :class:`MedforensicsError` of
    a series that cannot get one before its volume is read (a scan's volumes are read again on access).
    """
    out_dir = Path(out_dir)
    written: list[Path] = []
    expected: dict[str, int] = {}
    for index, series in enumerate(report.series):
        try:
            if precheck is not None and series.verdict != "error":  # an error says why first
                precheck(series)
            volume = require_dicom(series, volume_for(series, volumes, pixels=False))
            made = write_one(series, volume, out_dir / output_name(index, series, kind))
            written.extend(made if isinstance(made, list) else [made])
        except OutputError:
            raise  # the folder cannot take any of them: not a matter of this series
        except MedforensicsError as exc:
            message = f"{kind} skipped: {exc.one_line()}"
            log.info("%s", message)
            why = _expected_skip(series, exc)
            if why:
                expected[why] = expected.get(why, 0) + 1
            elif notes is not None:
                notes.append(message)
    if notes is not None:
        notes.extend(
            f"{kind} not written for {n} {why} (-v names them)" for why, n in sorted(expected.items())
        )
    return written
