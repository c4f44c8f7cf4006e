"""Whole-study scan: every series found under some paths is scanned independently.

CT volumes go to the dense localiser (:mod:`~medforensics.scan.dense`, the bundled default) or a cube
detector (:mod:`~medforensics.scan.cube_scan`), then to the duplicated-region checks.
2-D images and MR series (slice by slice) go to a 2-D detector when one is given (bundled in
``assets/detector2d/``), else they get ``verdict: "error"`` with the reason: the tool never invents a verdict.
A series that cannot be read, has a single slice where a volume is needed, or is neither CT nor MR gets
``verdict: "error"`` with a one-line reason; the others still run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medforensics._threads import one_blas_thread
from medforensics.errors import MedforensicsError, out_of_memory
from medforensics.io.dicom_tags import PROJECTION_MODALITIES
from medforensics.io.reader import SeriesRef, discover, load
from medforensics.io.volume import Volume, ct_voxel_reason
from medforensics.logging import get_logger, short_hash
from medforensics.scan.clones import add_clone_findings
from medforensics.scan.copies import copy_result, identical_series
from medforensics.scan.cube_scan import scan_ct
from medforensics.scan.detector import Detector, report_info
from medforensics.scan.enlarged import mark_synthetic
from medforensics.scan.enlarged_images import add_enlarged_images
from medforensics.scan.image2d import (
    MODALITIES_2D,
    ct_units_reason,
    image_2d_reason,
    scan_2d,
    scan_image_series,
)
from medforensics.scan.image_clones import add_image_clone_findings
from medforensics.scan.journal import Journal, files_digest, scan_settings, series_identity
from medforensics.scan.orientation import read_as, scan_axial
from medforensics.scan.result import Finding, ScanReport, SeriesResult
from medforensics.scan.routing import NotAssessed, member_result, not_an_image_reason, projection_reason
from medforensics.scan.slice_synthesis import add_synthetic_slices, assess_not_assessed
from medforensics.scan.volumes import LazyVolumes, volume_keys

log = get_logger("scan")

#: Fewest slices a CT needs for 3-D scoring.
MIN_CT_SLICES = 8
#: DICOM series whose float32 pixels would exceed this are decoded slab by slab when the detector
#: streams (the dense default does): memory then grows with the model grid, not the full series.
STREAM_ABOVE_BYTES = 256 * 2**20

Progress = Callable[[int, int, str], None]


def _series_reason(err: MedforensicsError, series: str | Path) -> str:
    """The reason a series failed, led by the file it is about when that is one of its files (a series
    folder with one truncated slice names that slice, whether loading or a streamed read found it)."""
    if not err.path or Path(err.path) == Path(series):
        return err.reason
    try:
        name = str(Path(err.path).relative_to(series))
    except ValueError:
        name = err.path
    return f"{name}: {err.reason}"


def _one_line(err: BaseException) -> str:
    if isinstance(err, MedforensicsError):
        return err.reason
    return " ".join(f"{type(err).__name__}: {err}".split())[:300]


#: A volume or image holding at most this many distinct non-negative integers is a label map (a segmentation
#: or mask beside its image, as 3D Slicer, pyradiomics and TotalSegmentator store them) or an image with
#: almost no signal (a Siemens scout of a phantom stores values 0-6), not intensities a detector can score:
#: two such real MR scouts scored 1.0 as single images (session 27, benchmarks/mr_false_alarms.py).
LABEL_MAP_MAX_VALUES = 64


def label_map_reason(volume: Volume) -> str | None:
    """A one-line reason when ``volume`` looks like a label map, a mask or an image with almost no signal
    rather than an image (judged on a sample of up to about a million voxels from 16 slices), else None."""
    from medforensics.io.lazy import LazySlices

    arr = volume.array
    step = max(1, volume.shape[0] // 16)
    sample = arr.sample() if isinstance(arr, LazySlices) else np.asarray(arr)[::step]
    flat = sample.ravel()[:: max(1, sample.size // 1_000_000)]
    values = np.unique(flat[np.isfinite(flat)])
    if values.size == 0 or values.size > LABEL_MAP_MAX_VALUES or values.min() < 0:
        return None
    if not np.array_equal(values, np.round(values)):
        return None
    return (
        f"{values.size} distinct integer values, not image intensities: a label map or mask (scan the image "
        "it segments) or an image with almost no signal"
    )


#: The reason given for a series whose voxels are not finite numbers.
NON_FINITE = "holds NaN or infinite voxel values: not an image the detectors can score"
#: The reason given when the scores of a series of finite voxels are not finite (a broken model or
#: calibration: NaN weights, Platt parameters that overflow).
NON_FINITE_SCORES = "the detector produced non-finite scores (is its model or calibration broken?)"
#: The same for a streamed series, whose voxels are not checked beforehand.
NON_FINITE_STREAMED = "the detector produced non-finite scores (NaN or infinite voxels, or a broken model)"


def finite_json(value: Any) -> Any:
    """``value`` (nested dicts and lists) with every NaN or infinite number replaced by None: what a
    report's ``extra`` holds must be valid JSON."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def _content_reason(volume: Volume) -> str | None:
    """Why an in-memory volume holds nothing to assess: :data:`NON_FINITE` voxels (integer data, as DICOM
    stores it, cannot have them; a streamed volume is caught by its scores instead), or one value
    throughout (an all-air or blank export, whose modality cannot even be told)."""
    arr = volume.array
    if not isinstance(arr, np.ndarray) or arr.size == 0:
        return None
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return NON_FINITE
    if float(arr.min()) == float(arr.max()):
        return "every voxel has the same value: nothing to assess"
    return None


def _modality_words(volume: Volume, reader_warnings: list[str]) -> str:
    """``modality XX`` for reasons, or ``no Modality tag`` when the DICOM reader found none."""
    if any(w.startswith("no Modality tag") for w in reader_warnings):
        return f"no Modality tag (read as {volume.modality})"
    return f"modality {volume.modality}"


def image_series(volume: Volume) -> bool:
    """An MR series or a series of projection radiographs: scored image by image by the 2-D detector."""
    return volume.modality == "MR" or volume.modality in PROJECTION_MODALITIES


def _ct_scan(
    detector: Any, explain: str | None, detector2d: Detector | None = None
) -> Callable[[Volume, SeriesResult], None]:
    """How a CT volume's axial view is scanned: the dense or cube detector, then the copy checks on the same
    view: the lungs' (the dense detector runs it itself, on keypoints gathered as it reads) and, with
    ``clone_region`` ``"body"``, every slice alone within the body; last, with ``detector2d``, its slices
    by the 2-D synthesis detector (:mod:`~medforensics.scan.slice_synthesis`)."""
    dense = getattr(detector, "kind", None) == "dense3d"
    checks: list[Callable[[Volume, SeriesResult], None]] = []
    if detector.clone_check and not dense:
        checks.append(add_clone_findings)
    if detector.clone_check and getattr(detector, "clone_region", "lungs") == "body":
        checks.append(lambda view, r: add_image_clone_findings(view, r, slice_by_slice=True))

    def run(view: Volume, result: SeriesResult) -> None:
        if dense:
            from medforensics.scan.dense import scan_ct_dense

            scan_ct_dense(view, detector, result)
        else:
            scan_ct(view, detector, result, explain)
        for check in checks:
            check(view, result)
        add_synthetic_slices(view, result, detector2d)

    return run


def route_error(volume: Volume, detector2d: Detector | None, detector: Detector | None = None) -> str | None:
    """Why ``volume`` cannot be scored by the available detectors (None: it can). A CT whose slices lie
    further apart than the CT detector's ``max_slice_mm`` is outside what it was validated on."""
    mod = volume.modality
    reader_warnings = [str(w) for w in volume.metadata.get("warnings") or []]
    words = _modality_words(volume, reader_warnings)
    if volume.shape[0] == 1:
        dropped = sum(w.startswith("duplicate slice position") for w in reader_warnings)
        if dropped:  # many images, one position: a volume whose geometry tags broke, not one image
            return (
                f"{dropped + 1} images at one slice position, read as one (the others dropped as "
                "duplicates): not assessed (malformed ImagePositionPatient?)"
            )
        if detector2d is None or mod not in MODALITIES_2D:
            if mod == "CT":
                return f"single CT slice: the CT detector needs a volume; no 2-D detector bundled for {words}"
            # an ultrasound or nuclear-medicine image is outside what the detectors cover, not a failure
            return NotAssessed(f"2-D image; no 2-D detector bundled for {words}")
        reason = label_map_reason(volume) or image_2d_reason(volume, detector2d.spec.size)
        units = None if reason else ct_units_reason(volume)  # a CT slice whose rescale went wrong
        return NotAssessed(units) if units else reason
    if mod != "CT":
        mask = label_map_reason(volume)
        if mask or (image_series(volume) and detector2d is not None):
            return mask or image_2d_reason(volume, detector2d.spec.size)  # type: ignore[union-attr]
        return NotAssessed(f"{words}: the detector scores CT volumes (no {mod} detector bundled)")
    # a CT is scored in its axial layout (scan.orientation): a coronal series' slices there are its rows
    amap, sp = volume.axial_axes(), volume.spacing
    slices, spacing = amap.shape[0], (sp[amap.axes[0]], sp[amap.axes[1]], sp[amap.axes[2]])
    if slices < MIN_CT_SLICES:
        return f"only {slices} slices: the CT detector needs a volume of >= {MIN_CT_SLICES} slices"
    odd = ct_voxel_reason(spacing)
    if odd:
        return odd
    limit = getattr(detector, "max_slice_mm", None)
    if limit is not None and spacing[0] > limit + 1e-6:
        no_pos = any(w.startswith(("no slice positions", "some slices lack")) for w in reader_warnings)
        assumed = " (assumed: no usable slice positions)" if no_pos else ""
        return NotAssessed(
            f"slices {spacing[0]:.3g} mm apart{assumed}: the CT detector is validated for slices up "
            f"to {limit:.3g} mm apart and misses attacks on thicker ones (not assessed; --max-slice-mm "
            "scores it anyway)"
        )
    pixel_limit, pixel = getattr(detector, "max_pixel_mm", None), max(spacing[1], spacing[2])
    if pixel_limit is not None and pixel > pixel_limit + 1e-6:
        return NotAssessed(
            f"pixels {pixel:.3g} mm: the CT detector is validated for pixels up to "
            f"{pixel_limit:.3g} mm and both misses attacks and flags authentic series on coarser ones (not "
            "assessed; --max-pixel-mm scores it anyway)"
        )
    return projection_reason(volume)  # a MIP / MinIP claim its pixels bear out: not assessed


def _assess(
    volume: Volume, res: SeriesResult, detector: Detector, detector2d: Detector | None, explain: str | None
) -> None:
    """Route ``volume`` to its detector and scan it into ``res`` (or say why it is not scanned)."""
    reason = (
        not_an_image_reason(volume.modality)
        or _content_reason(volume)
        or route_error(volume, detector2d, detector)
    )
    if reason is not None:
        res.error, res.not_assessed = reason, isinstance(reason, NotAssessed)
        assess_not_assessed(volume, res, detector2d)  # synthetic slices do not depend on the tamper detector
    elif volume.shape[0] == 1 or image_series(volume):
        (scan_2d if volume.shape[0] == 1 else scan_image_series)(volume, detector2d, res)  # type: ignore[arg-type]
        add_enlarged_images(volume, res)  # generated at a smaller size, whatever the generator
        if getattr(detector, "clone_check", True):  # a CT volume: the checks of _ct_scan
            add_image_clone_findings(volume, res)
    else:
        scan_axial(volume, res, _ct_scan(detector, explain, detector2d))
        mark_synthetic(res)  # enlarged slices (scan.enlarged), or synthetic ones (scan.slice_synthesis)


def scan_volume(
    volume: Volume,
    detector: Detector,
    *,
    detector2d: Detector | None = None,
    explain: str | None = "gradcam",
    path: str | None = None,
) -> SeriesResult:
    """Scan one loaded volume; any problem becomes ``verdict: "error"`` with a one-line reason."""
    t0 = time.perf_counter()
    res = SeriesResult(
        path=path or str(volume.source or ""),
        series_uid=volume.series_uid,
        modality=volume.modality,
        shape=volume.shape,
        spacing_mm=volume.spacing,
        study_uid=volume.metadata.get("study_uid"),
    )
    try:
        with one_blas_thread():
            _assess(volume, res, detector, detector2d, explain)
    except MedforensicsError as err:
        res.error = _series_reason(err, res.path)
    except MemoryError as err:
        res.error = out_of_memory(err)
    except (ValueError, RuntimeError, IndexError) as err:  # one series must not stop the scan
        log.warning("series %s failed: %s", res.series_uid, _one_line(err))
        res.error = f"internal error: {_one_line(err)}"
    scores = [res.score, *(f.score for f in res.findings)]
    if res.error is None and not all(v is None or np.isfinite(v) for v in scores):
        # an in-memory volume's voxels were checked finite above: its scores went wrong in the detector
        res.error = NON_FINITE_SCORES if isinstance(volume.array, np.ndarray) else NON_FINITE_STREAMED
        res.extra = {}  # computed from the same scores (top_candidates...): nothing of it holds
    if res.error is not None:
        res.verdict, res.score, res.label = "error", None, None
        res.findings = []
    how = read_as(volume)
    if how:
        res.extra["read_as"] = how
    res.extra = finite_json(res.extra)
    res.seconds = time.perf_counter() - t0
    return res


# ---------------------------------------------------------------------------------------------- all paths
def _signature(ref: SeriesRef, res: SeriesResult, trusted: Any) -> None:
    from medforensics.provenance import series_signature_status

    try:
        status = series_signature_status(ref.files, trusted=trusted)
    except (MedforensicsError, OSError, ValueError) as err:
        status = "error"
        log.warning("signature check of %s failed: %s", res.series_uid, _one_line(err))
    res.signature = status
    if status in ("invalid", "mixed") and res.verdict != "error":
        text = "a digital signature does not verify" if status == "invalid" else "only some files are signed"
        res.findings.insert(0, Finding("signature", 1.0 if status == "invalid" else 0.7, description=text))


def _load_and_scan(
    ref: SeriesRef, stream: int | None, detector: Detector, detector2d: Detector | None, explain: str | None
) -> tuple[SeriesResult, Volume | None]:
    """Load and scan one series; a series that cannot be loaded gets its error and no volume."""
    try:
        vol = load(ref, stream_above=stream)
    except MedforensicsError as err:
        return SeriesResult(
            path=str(ref.path), series_uid=ref.series_uid, error=_series_reason(err, ref.path)
        ), None
    except (ValueError, RuntimeError, MemoryError, OSError) as err:
        return SeriesResult(path=str(ref.path), series_uid=ref.series_uid, error=_one_line(err)), None
    return scan_volume(vol, detector, detector2d=detector2d, explain=explain, path=str(ref.path)), vol


def _reload(ref: SeriesRef, stream: int | None) -> Volume | None:
    """The volume of a series the journal gave the result of, for a caller that holds volumes (None when it
    cannot be read now)."""
    try:
        return load(ref, stream_above=stream)
    except (MedforensicsError, ValueError, RuntimeError, MemoryError, OSError):
        return None


def scan_paths(
    paths: Iterable[str | Path],
    *,
    detector: Detector,
    detector2d: Detector | None = None,
    on_progress: Progress | None = None,
    signatures: bool = True,
    trusted: Any = None,
    explain: str | None = "gradcam",
    keep_volumes: bool | str = True,
    jobs: int = 1,
    unpack_to: str | Path | None = None,
    journal: Journal | None = None,
    on_discovery: Callable[[int, int], None] | None = None,
) -> tuple[ScanReport, Mapping[str, Volume]]:
    """Scan every series under ``paths``; returns the report and (if ``keep_volumes``) the volumes by
    ``SeriesResult.key`` (the path; ``path#k`` for the k-th of several series in one folder).

    ``keep_volumes="lazy"`` returns a :class:`LazyVolumes` instead of holding every volume in memory.

    ``jobs`` > 1 scans that many series at a time in worker processes, each on its share of torch's
    threads (:mod:`medforensics.scan.parallel`); the volumes are then always ``"lazy"`` ones. The headers
    of an archive's DICOM files (thousands) are read on that many processes too. The workers
    are spawned, so a script calling this with ``jobs`` > 1 needs the ``if __name__ == "__main__":``
    guard (the CLI has it).

    ``on_progress(index, total, label)`` is called before each series (with ``jobs`` > 1: as each is
    done; there with a ``journal`` also before each series is looked up in it, ``label`` then starting
    ``(journal)``) and once at the end.

    ``unpack_to``: a scratch folder the caller owns (and keeps while the volumes are used) into which ZIP
    archives among ``paths`` are unpacked and scanned (:func:`~medforensics.io.archives.expand_archives`);
    their series are reported as ``archive.zip/member``. Without it an archive is skipped.

    ``journal``: each series' result is kept there as soon as it is done, and a series whose entry there
    matches its files and this scan's settings is not scanned again (:mod:`~medforensics.scan.journal`).

    ``on_discovery(done, total)`` follows the reading of the DICOM files' headers before any series is
    scanned (minutes for an archive of a million files).
    """
    found = discover(paths, on_file=on_discovery, jobs=jobs)
    shown: Callable[[str | Path], str] = str
    if unpack_to is not None:
        from medforensics.io.archives import expand_archives

        found, shown = expand_archives(found, Path(unpack_to))
    skipped = [{"path": str(s.path), "reason": s.reason} for s in found.skipped]
    report = ScanReport(model=report_info(detector), skipped=skipped)
    volumes: dict[str, Volume] = {}
    # a detector that reads the series slab by slab gets long DICOM series decoded on demand
    stream = STREAM_ABOVE_BYTES if getattr(detector, "streams", False) else None
    lazy = LazyVolumes(stream)
    total = len(found.series)
    keys = volume_keys([str(ref.path) for ref in found.series])
    members = [member_result(ref) for ref in found.series]  # a localizer, screen capture, MIP...: not loaded
    ident = [
        series_identity(ref.kind, shown(ref.path), keys[i][len(str(ref.path)) :], ref.series_uid)
        for i, ref in enumerate(found.series)
    ]
    # copies of a series given earlier in this scan: its result, not a scan of their own
    same = identical_series(found.series, skip={i for i, m in enumerate(members) if m is not None})
    loaded_of: dict[int, bool] = {}
    kept: dict[int, tuple[SeriesResult, bool]] = {}  # results the journal gave, by series
    if journal is not None:
        journal.bind(scan_settings(detector, detector2d, explain))
        if jobs > 1:  # the workers get only the series still to scan: looked up now, `jobs` at a time

            def looked_up(i: int) -> None:  # each lookup hashes the series' files: minutes for an archive
                if on_progress:
                    on_progress(i + 1, total, f"(journal) {shown(found.series[i].path)}")

            asked = [
                (ident[i], ref.files) if members[i] is None and i not in same else None
                for i, ref in enumerate(found.series)
            ]
            for i, got in enumerate(journal.lookup_all(asked, jobs, looked_up)):
                if got.result is not None:
                    kept[i] = got.result, got.loaded
    todo = [r for i, r in enumerate(found.series) if members[i] is None and i not in kept and i not in same]
    parallel = jobs > 1 and len(todo) > 1
    if parallel:
        from medforensics.scan.parallel import Setup, scan_in_workers

        keep_volumes = "lazy" if keep_volumes else False
        setup = Setup.share(detector, detector2d, explain, stream, jobs, digest=journal is not None)
        scanned = scan_in_workers(todo, setup, jobs)
    # an interrupt or an error here stops the workers at once (closing the generator), not at exit
    with contextlib.closing(scanned) if parallel else contextlib.nullcontext():
        for i, ref in enumerate(found.series):
            if on_progress and not parallel:
                on_progress(i, total, shown(ref.path))
            t0 = time.perf_counter()
            res, vol, loaded, digest = members[i], None, False, None
            if i in same:  # without the signature status of the series it copies: checked below
                res, loaded = copy_result(report.series[same[i]], str(ref.path)), loaded_of[same[i]]
                if loaded and keep_volumes is True:
                    vol = _reload(ref, stream)
            elif res is None and journal is not None and jobs == 1:
                got = journal.lookup(ident[i], ref.files)
                digest = got.digest
                if got.result is not None:
                    kept[i] = got.result, got.loaded
            if i in kept:  # without its signature status: checked again below
                res, loaded = kept[i]
                res.path = shown(ref.path)  # a copy elsewhere (a moved export) was scanned under another
                if loaded and keep_volumes is True:
                    vol = _reload(ref, stream)
            elif res is None and parallel:
                res, loaded, digest = next(scanned)
                t0 -= res.seconds  # the worker's load and scan, then what is done here
            elif res is None:
                digest = digest or (files_digest(ref.files) if journal is not None else None)
                res, vol = _load_and_scan(ref, stream, detector, detector2d, explain)
                loaded = vol is not None
            if loaded and keep_volumes and (keep_volumes == "lazy" or vol is not None):
                res.key = keys[i]
                if keep_volumes == "lazy":
                    lazy.add(keys[i], ref)
                else:
                    volumes[keys[i]] = vol  # type: ignore[assignment]
            del vol
            if signatures and ref.kind == "dicom":
                _signature(ref, res, trusted)
            if i not in kept:  # a kept result keeps its seconds: those of its scan
                res.seconds = time.perf_counter() - t0
                res.path = shown(res.path)
                if journal is not None and members[i] is None and i not in same and res.verdict != "error":
                    journal.put(ident[i], digest, res, loaded, ref.files)  # errors are not kept: tried again
            report.series.append(res)
            loaded_of[i] = loaded
            how = ", kept" if i in kept else ", a copy of an earlier series" if i in same else ""
            log.info("series %s: %s (%.1f s%s)", res.series_uid, res.verdict, res.seconds, how)
            if on_progress and parallel:
                on_progress(i + 1, total, shown(ref.path))
    if on_progress:
        on_progress(total, total, "done")
    return report, (lazy if keep_volumes == "lazy" else volumes)


def audit_scan(report: ScanReport, log_path: str | Path | None = None) -> None:
    """One audit-log entry for a scan: series UIDs and hashed paths, verdicts and the model hash."""
    from medforensics.provenance import append_entry

    subjects = [{"series_uid": s.series_uid, "path_sha": short_hash(s.path)} for s in report.series]
    details = {
        "model": report.model.name,
        "model_sha256": report.model.sha256,
        "results": [
            {"verdict": s.verdict, "score": s.score, "label": s.label, "findings": len(s.findings)}
            for s in report.series
        ],
    }
    append_entry("scan", subjects, details, log_path=log_path)
