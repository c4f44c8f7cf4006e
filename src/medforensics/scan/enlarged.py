"""Slices enlarged from a smaller image: the trace of a whole CT volume synthesised at low resolution.

A scanner reconstructs every slice on its own pixel grid, so its noise reaches every pixel alike. A
generator (a GAN or diffusion model) makes slices of 64-256 pixels and enlarges them to the series' 512
(the forge's ``dcgan-synth`` does, and published whole-volume generators super-resolve their output the
same way); an image enlarged ``k``-fold by interpolation is linear (bilinear), constant (nearest) or a
smooth cubic (bicubic) between the small image's samples. Its second difference along a row therefore
vanishes, or nearly, at the phases of the ``k``-pixel period that lie between the samples, and peaks at
those beside them. :class:`EnlargedTrace` sums the squared second differences along rows per column and
along columns per row over about :data:`SLICES` slices (an ``on_slab`` callback, in the scan's one pass over
the pixels); :func:`enlargement` folds both profiles by each period ``k`` of :data:`PERIODS` and takes
the weakest phase's mean energy over the strongest's (even and odd pixels divided out first: JPEG 2000's
finest wavelet level makes them unlike). A reconstruction's noise gives every phase nearly the same
energy; an enlarged image leaves some phases empty. Slices turned in plane after the enlargement no
longer line up with the rows: :func:`rotated_enlargement` finds their period as a peak of the 2-D
spectrum of the log energy (about :data:`SPECTRUM_SLICES` slices), off the axes, at a whole period.

Measured (``benchmarks/enlarged_slices.py``, ``benchmarks/enlarged_slices.md``, session 73) on 9 real CTs'
middle slices, as stored, turned 5-19.5 degrees, through 1 mm voxels and back, and coded as JPEG 2000 20:1
and 12-bit JPEG quality 75: phase ratio at least 0.651, turned strength at most 1955; enlarged 1.5-fold
(to finer pixels) 0.247-0.656. DCGAN slices enlarged 8-fold bilinear 0.004, nearest 0.000, bicubic 0.176,
bilinear then coded J2K 20:1 0.005 or JPEG 75 0.106, bilinear then turned 5 or 10 degrees: strength at
least 21228. From :data:`ENLARGED` (or :data:`ROTATED_PEAK`) a CT series is reported as enlarged (a
``synthetic`` finding; the series' verdict becomes ``synthetic``, label SYN). The real CTs' variants lie
at least 2.6 times from either cut, but the 1.5-fold enlargement only 1.24 times, and bicubic 8-fold
slices only 1.14 times under it: margins measured on 9 CTs, not guarantees.

Not found (stated, not hidden): an enlargement by 2 (no phase lies wholly between samples), a 3-fold
bicubic one (0.407), and noise added after the enlargement (5 HU of Gaussian noise fills the empty phases
of the DCGAN's smooth slices: 0.535), as the forge's noise augmentation does; a generator working at the
series' own size leaves no such trace.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

# the same slices, pixels and rows as the resampled check's trace (scan.resampling.GridTrace) counts
from medforensics.scan.resampling import COUNTED_HU, MIN_COVER, SLICES
from medforensics.scan.result import Finding

#: Periods (pixels) searched: 64-256 pixel images enlarged to 192-2048.
PERIODS = tuple(range(3, 9))
#: Covered rows and columns each phase needs (fewer: the period is not tested on that axis).
MIN_PER_PHASE = 8
#: Least mean energy (HU^2) of the strongest phase for a period to be tested: a flat or nearly flat series
#: has no energy to fold (a reconstruction's noise of 10 HU gives about 600).
MIN_ENERGY = 4.0
#: Weakest-over-strongest phase energy from which a series is enlarged (both axes). An enlargement by a
#: whole factor leaves the phases between samples empty (bilinear, nearest: under 0.01; coded JPEG 2000
#: 20:1 0.005, JPEG 75 0.106; bicubic 8-fold 0.176); one by 1.5 puts a kink a half pixel from two of
#: every three pixels, a quarter of the energy of the third (TotalSegmentator's smooth 1.5 mm CT enlarged
#: to 1 mm: 0.247); real CT as stored, turned, resampled through 1 mm or coded: at least 0.651.
ENLARGED = 0.2
#: Least share of a found period's energy in its two strongest neighbouring phases (:func:`concentration`):
#: an enlargement's kinks sit at one sample per period (bilinear, nearest: 0.99-1.0; bicubic 8-fold 0.46);
#: noise resampled through 1 mm and back on 0.625 mm pixels (five samples every 8 pixels) 0.31.
CONCENTRATED = 0.4
#: Most times the mean energy of even pixels may exceed the odd pixels' (or the reverse) for an axis to be
#: tested. JPEG 2000 coding that discards the finest wavelet level leaves one parity nearly empty, and the
#: division by it turns the other's texture into phases: pydicom-data's ``693_UNCI`` (a head CT slice
#: decoded from lossy JPEG 2000) has 3360 / 35 times (rows / columns), phase ratio 0.040 at period 4
#: without this limit; chest CT coded 10:1 to 120:1 1.1-7 times; DCGAN CT, MR and radiograph slices enlarged
#: 3-8-fold 1.0-1.3 times, coded 20:1 after it up to 4.7 times (session 75).
PARITY_LIMIT = 20.0
#: Score of the finding and the series' least score when it is found: the rule has no calibration of its
#: own (its cuts' measured margins: module docs).
SCORE = 0.95
CHECK = "enlarged"
#: Slices whose 2-D spectrum is summed (the rotated rule, :func:`rotated_enlargement`).
SPECTRUM_SLICES = 12
#: Strength (the peak's power over the median of its ring of frequencies) from which a period of
#: :data:`PERIODS` in a direction off the axes is an enlargement turned in plane, for 512 x 512 slices (the
#: strength of a periodic trace grows with the pixels summed: scaled by them). Measured (session 73, 24
#: middle slices of the 7 real CTs here with slices of at least :data:`ROTATED_PIXELS`): turned by angles
#: whose interpolation itself repeats every 3-6 pixels (9.6, 14.5 and 19.5 degrees) at most 1955; the
#: forge's DCGAN slices enlarged 8-fold, then turned 5 or 10 degrees, at least 21228.
ROTATED_PEAK = 5000.0
#: Pixels a slice needs for the turned rule (smaller ones: the scaled strength is too noisy; 101 x 122
#: slices turned 19.5 degrees reached 2243).
ROTATED_PIXELS = 256 * 256
#: Directions within this many degrees of the rows or columns are left to the phase rule.
AXIS_DEGREES = 2.0
#: How near (fraction of the period) the peak's period must lie to a whole one.
PERIOD_TOLERANCE = 0.02


class EnlargedTrace:
    """Squared second differences along rows (summed per column) and along columns (per row), over every
    ``step``-th slice of a series of ``n``, only where the three taps lie in :data:`COUNTED_HU`; and the
    2-D power spectrum of their log energy over about :data:`SPECTRUM_SLICES` of those slices."""

    def __init__(self, n: int) -> None:
        self.step = max(1, -(-n // SLICES))
        self.spectrum_step = self.step * max(1, -(-n // (self.step * SPECTRUM_SLICES)))
        self.sums: list[NDArray[np.float64]] | None = None  # along-row energy per column, then per row
        self.counts: list[NDArray[np.float64]] | None = None
        self.power: NDArray[np.float64] | None = None
        #: the rules' measures of what is summed so far, by rule and arguments (emptied by every slice added):
        #: a series' record and finding measure it once
        self.measured: dict[tuple[Any, ...], Any] = {}

    def add(self, z0: int, block: NDArray[Any]) -> None:
        """Slices ``z0, z0 + 1, ...`` of ``block`` (z, y, x; HU): those on the step are summed."""
        for k in range(len(block)):
            if (z0 + k) % self.step == 0 and min(block.shape[1:]) > 2:
                self._add(np.asarray(block[k], np.float32), (z0 + k) % self.spectrum_step == 0)

    def _add(self, img: NDArray[np.float32], spectrum: bool) -> None:
        self.measured.clear()
        if self.sums is None or self.counts is None:
            self.sums = [np.zeros(img.shape[1]), np.zeros(img.shape[0])]
            self.counts = [np.zeros(img.shape[1]), np.zeros(img.shape[0])]
        if img.shape != (len(self.sums[1]), len(self.sums[0])):  # a slice of another size: not summed
            return
        ok = (img > COUNTED_HU[0]) & (img < COUNTED_HU[1])
        energies = []
        for axis in (1, 0):  # along rows (x), then along columns (y)
            a, m = np.moveaxis(img, axis, 0), np.moveaxis(ok, axis, 0)
            d2 = a[:-2] - 2.0 * a[1:-1]
            d2 += a[2:]
            used = m[:-2] & m[1:-1]
            used &= m[2:]
            np.multiply(d2, d2, out=d2)
            d2[~used] = 0.0
            i = 0 if axis == 1 else 1
            self.sums[i][1:-1] += d2.sum(1, dtype=np.float64)
            self.counts[i][1:-1] += used.sum(1)
            energies.append((np.moveaxis(d2, 0, axis), np.moveaxis(used, 0, axis)))
        if spectrum:
            (ex, ux), (ey, uy) = energies  # (y, x - 2) and (y - 2, x)
            self._add_spectrum(ex[1:-1] + ey[:, 1:-1], ux[1:-1] & uy[:, 1:-1])

    def _add_spectrum(self, energy: NDArray[np.float32], used: NDArray[np.bool_]) -> None:
        if not used.any():
            return
        e = np.log1p(energy)  # the kinks' energy spans decades: its log keeps one bright edge from ruling
        e -= float(e[used].mean())
        e[~used] = 0.0
        power = np.abs(np.fft.rfft2(e)) ** 2
        self.power = power if self.power is None else self.power + power


def phase_means(
    energy: NDArray[np.float64], count: NDArray[np.float64], period: int
) -> NDArray[np.float64] | None:
    """Mean energy per phase over the strongest's, folding the covered entries of one axis by ``period``;
    None when a phase has fewer than :data:`MIN_PER_PHASE` covered entries or the strongest's mean is under
    :data:`MIN_ENERGY`."""
    idx = np.flatnonzero(count >= MIN_COVER * max(float(count.max()), 1.0))
    # JPEG 2000's finest wavelet level leaves even and odd pixels unlike (a ratio of 0.44 at every even
    # period, coded 20:1); an enlargement by 3 or more puts its samples on both alike: parity divided out
    parity = [
        float(energy[idx[idx % 2 == p]].sum()) / max(float(count[idx[idx % 2 == p]].sum()), 1.0)
        for p in (0, 1)
    ]
    if min(parity) <= 0.0 or max(parity) > PARITY_LIMIT * min(parity):
        return None
    scaled = energy / np.asarray(parity)[np.arange(len(energy)) % 2]
    means = []
    for p in range(period):
        at = idx[idx % period == p]
        if len(at) < MIN_PER_PHASE:
            return None
        means.append(float(scaled[at].sum()) / max(float(count[at].sum()), 1.0) * float(np.mean(parity)))
    if max(means) < MIN_ENERGY:
        return None
    return np.asarray(means) / max(means)


def concentration(means: NDArray[np.float64]) -> float:
    """The share of the energy in the two neighbouring phases that hold most of it (circularly)."""
    return float((means + np.roll(means, -1)).max() / max(float(means.sum()), 1e-12))


def on_block_edges(means: NDArray[np.float64]) -> bool:
    """Whether a period that shares a factor of 4 or 8 with JPEG's 8-pixel block holds its strongest
    energy where the blocks meet: every pair of neighbouring phases that a block edge (7, 0 modulo 8) folds
    onto holds at least half the strongest pair's (period 8: one pair, 12: three, 16: two). A
    nearest-neighbour enlargement by 4 or 8 puts its steps there too; a bilinear or bicubic one by 4 or 8
    puts its samples between them (at its own period at most 0.34 of the strongest pair there: this
    project's DCGAN images, session 75), and one by 12 or 16 leaves all but one of those pairs empty."""
    period = len(means)
    g = math.gcd(period, 8)
    if g < 4:
        return False
    pairs = means + np.roll(means, -1)
    return float(pairs[g - 1 :: g].min()) >= 0.5 * float(pairs.max())


def enlargement(
    trace: EnlargedTrace, block_edges: bool = True, periods: tuple[int, ...] = PERIODS
) -> tuple[int, float]:
    """(period, ratio): ratio is the weakest phase's mean energy over the strongest's, the greater of the two
    axes'. A period of ``periods`` (:data:`PERIODS`) is found when its ratio is under :data:`ENLARGED` and the
    energy gathers at the small image's samples (:func:`concentration` at least :data:`CONCENTRATED` on both
    axes: resampling by a factor such as 1.6 puts several samples in one period); of those, the one with the
    fewest phases that are not empty (at least :data:`ENLARGED` of the strongest), the longest of those: a
    multiple of the true period has more, a divisor as few but is shorter. None found: (0, the lowest ratio);
    (0, 1.0) when nothing was summed or no period could be tested. Without ``block_edges`` a period whose
    energy sits on JPEG's block edges on both axes (:func:`on_block_edges`) is not tested: an 8-bit image
    coded as JPEG shows the same phases. ``periods``: those searched."""
    key = ("enlargement", block_edges, periods)
    if key not in trace.measured:
        trace.measured[key] = _enlargement(trace, block_edges, periods)
    return trace.measured[key]


def _enlargement(trace: EnlargedTrace, block_edges: bool, periods: tuple[int, ...]) -> tuple[int, float]:
    if trace.sums is None or trace.counts is None:
        return 0, 1.0
    found: list[tuple[int, int, float]] = []  # (phases not empty, -period, ratio)
    lowest = 1.0
    for period in periods:
        means = [phase_means(e, n, period) for e, n in zip(trace.sums, trace.counts, strict=True)]
        if any(m is None for m in means):
            continue
        kept = [m for m in means if m is not None]
        if not block_edges and all(on_block_edges(m) for m in kept):
            continue
        ratio = max(float(m.min()) for m in kept)
        lowest = min(lowest, ratio)
        if ratio < ENLARGED and min(concentration(m) for m in kept) >= CONCENTRATED:
            found.append((max(int((m >= ENLARGED).sum()) for m in kept), -period, ratio))
    if not found:
        return 0, lowest
    _, period, ratio = min(found)
    return -period, ratio


def rotated_enlargement(trace: EnlargedTrace) -> tuple[int, float, float]:
    """(period, strength, degrees off the rows) of the strongest peak of the summed 2-D spectrum at a whole
    period of :data:`PERIODS` (within :data:`PERIOD_TOLERANCE`) in a direction at least
    :data:`AXIS_DEGREES` off the rows and columns; strength is its power over the median power of its ring
    of frequencies, scaled to 512 x 512 slices. (0, 0.0, 0.0) when none, when nothing was summed or when
    the slices have fewer than :data:`ROTATED_PIXELS`."""
    if ("rotated",) not in trace.measured:
        trace.measured[("rotated",)] = _rotated_enlargement(trace)
    return trace.measured[("rotated",)]


def _rotated_enlargement(trace: EnlargedTrace) -> tuple[int, float, float]:
    if trace.power is None or trace.sums is None:
        return 0, 0.0, 0.0
    if len(trace.sums[0]) * len(trace.sums[1]) < ROTATED_PIXELS:
        return 0, 0.0, 0.0
    power = trace.power
    ny, nx = len(trace.sums[1]) - 2, len(trace.sums[0]) - 2  # the energy map's (interior) shape
    fy, fx = np.fft.fftfreq(ny)[:, None], np.fft.rfftfreq(nx)[None, :]
    radius = np.hypot(fy, fx)
    ring = np.round(radius * 200.0).astype(np.int64)  # rings 0.005 cycles per pixel wide
    band = (radius >= 1.0 / (PERIODS[-1] + 0.5)) & (radius <= 1.0 / (PERIODS[0] - 0.5))
    strength = np.zeros_like(power)
    for r in np.unique(ring[band]):
        at = band & (ring == r)
        strength[at] = power[at] / max(float(np.median(power[ring == r])), 1e-12)
    degrees = np.degrees(np.arctan2(np.abs(fy), fx)) % 90.0 * np.ones_like(power)
    off_axis = np.minimum(degrees, 90.0 - degrees) >= AXIS_DEGREES
    period = 1.0 / np.maximum(radius, 1e-12)
    whole = np.abs(period - np.round(period)) <= PERIOD_TOLERANCE * period
    candidates = np.where(band & off_axis & whole, strength, 0.0)
    k = int(np.argmax(candidates))
    if candidates.flat[k] <= 0.0:
        return 0, 0.0, 0.0
    scale = (512.0 * 512.0) / float(ny * nx)
    return round(float(period.flat[k])), float(candidates.flat[k]) * scale, float(degrees.flat[k])


def enlarged_finding(
    trace: EnlargedTrace,
    volume: Any,
    unit: str = "slice",
    block_edges: bool = True,
    periods: tuple[int, ...] = PERIODS,
) -> Finding | None:
    """A ``synthetic`` finding (check :data:`CHECK`) over the whole series when its slices are enlarged
    (:func:`enlargement` under :data:`ENLARGED`, or turned after: :func:`rotated_enlargement` from
    :data:`ROTATED_PEAK`), else None. ``unit`` names what was traced (``slice``, ``image``: a radiograph);
    ``block_edges`` and ``periods``: see :func:`enlargement`."""
    ny, nx = volume.image_shapes[0]  # the first traced image's own size (a radiograph series': its first)
    what = f"every {unit}" if volume.shape[0] > 1 else f"the {unit}"
    period, ratio = enlargement(trace, block_edges, periods)
    if period:
        what += (
            f" is enlarged {period}-fold from an image of about {ny // period} x {nx // period} "
            f"pixels: along rows and columns, the pixels between that image's samples carry {ratio:.1%} of "
            "the second-difference energy of those beside them (a reconstruction's noise: at least 65 %)"
        )
    else:
        period, strength, degrees = rotated_enlargement(trace)
        if strength < ROTATED_PEAK:
            return None
        what += (
            f" is enlarged and turned: its second-difference energy repeats every {period} pixels "
            f"along a direction {degrees:.1f} degrees off the rows ({strength:.0f} times the median of its "
            f"ring of the spectrum; real CT turned in plane at most 1955, an enlargement turned at least "
            "21228)"
        )
    text = (
        f"{what}: made at a lower resolution and interpolated, as synthesis at a generator's size does; a "
        f"scanner samples every pixel of a {unit} on its own grid"
    )
    return whole_series_finding(volume, text, CHECK)


def enlarged_record(
    trace: EnlargedTrace, block_edges: bool = True, periods: tuple[int, ...] = PERIODS
) -> dict[str, Any]:
    """What the rule measured, for a result's ``extra["enlarged"]``: the period found (None: none), the
    lowest phase ratio and its cut, the turned rule's strength and its cut (arguments: see
    :func:`enlargement`)."""
    period, ratio = enlargement(trace, block_edges, periods)
    return {
        "period": period or None,
        "phase_ratio": round(ratio, 4),
        "cut": ENLARGED,
        "turned_strength": round(rotated_enlargement(trace)[1], 1),
        "turned_cut": ROTATED_PEAK,
    }


def whole_series_finding(volume: Any, text: str, check: str) -> Finding:
    """A rule's ``synthetic`` finding of score :data:`SCORE` over the whole of ``volume`` (z, y, x), centred
    on it in voxels and mm; ``check`` names the rule."""
    nz, ny, nx = volume.shape
    mm = volume.index_to_patient(np.array([nz / 2, ny / 2, nx / 2]))
    return Finding(
        "synthetic",
        SCORE,
        (nz // 2, ny // 2, nx // 2),
        (float(mm[0]), float(mm[1]), float(mm[2])),
        (0, 0, 0, nz, ny, nx),
        text,
        check=check,
    )


def has_rule_finding(findings: Any) -> bool:
    """Whether ``findings`` hold a rule's ``synthetic`` finding (one that names its ``check``: enlarged
    slices, or slices the 2-D synthesis detector calls synthetic)."""
    return any(f.type == "synthetic" and f.check for f in findings)


def mark_synthetic(result: Any) -> None:
    """A series or image with a rule's ``synthetic`` finding (enlarged slices, or a CT's slices the 2-D
    synthesis detector calls synthetic: :mod:`~medforensics.scan.slice_synthesis`) is synthetic (label SYN,
    score at least :data:`SCORE`), whatever the tamper or 2-D detector said of it; its other findings stay
    listed."""
    if result.error is not None or not has_rule_finding(result.findings):
        return
    result.verdict, result.label = "synthetic", "SYN"
    result.score = max(float(result.score or 0.0), SCORE)
