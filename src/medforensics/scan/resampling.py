"""Pixels interpolated from another grid: a CT series resampled after it was reconstructed.

A scanner reconstructs every slice on its own pixel grid. A tool that resamples the series to other voxels
and back (the released CT-GAN attack scales the whole scan to 1 mm voxels before it edits a cube and back
after, ``scipy.ndimage.zoom``; most deep-learning pipelines resample to isotropic voxels the same way)
leaves every pixel interpolated at a phase of the other grid that repeats along the rows and columns. The
noise energy of the in-plane high-pass residual then rises and falls with that phase: pixels that fall on the
other grid keep more of it than those between (Popescu & Farid 2005, "Exposing digital forgeries by
detecting traces of resampling"). :class:`GridTrace` sums that energy per row and per column over the
slices (an ``on_slab`` callback, so it rides on the scan's one pass over the pixels); :func:`periodicity`
finds a peak of the same frequency in both profiles' spectra, and :func:`resampled_finding` reports it.

Measured on the 9 real CTs available here (``benchmarks/resampling.py``, ``benchmarks/resampling.md``): none
reported as stored; after the CT-GAN tool's round trip, the 6 with pixels of 0.57-0.82 mm are. Pixels near
1 mm (a trip that barely changes them) or voxels already coarser than the trip's leave no trace to find;
noise added after the trip hides it (2 of 6 left at 20 HU). ``forge inject|remove --round-trip-mm`` makes
such forgeries (:mod:`medforensics.forge.round_trip`).

Lossy compression has grids of its own: JPEG's 8 x 8 blocks and JPEG 2000's wavelet levels put periodic
residual energy at multiples of 1/8 cycle per pixel and near 1/2 (:data:`CODING_BANDS`). Authentic CTs
coded so (JPEG 2000 at 10:1 and 20:1, 12-bit JPEG) read up to 7968 there (session 50), so those bands are
searched only on a DICOM series that records no lossy coding (its pixels cannot carry a coding's grid),
not on a lossy one or a file that cannot say (NIfTI, MHD). A series whose pixels carry such a grid
(:func:`coding_peak` at least :data:`CODING_TRACE`) in a file that cannot record lossy coding is reported
as lossy-compressed (session 53; :func:`~medforensics.scan.metadata_checks.coding_grid_finding`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage

from medforensics.features.noise_map import kv_residual
from medforensics.scan.jpeg_history import JpegTrace
from medforensics.scan.result import Finding

#: Strength of the peak (its power over the median power of both spectra, the weaker of the two) from
#: which a series is reported as resampled, at any frequency. Authentic CT series measured here: at most 23.
PEAK = 60.0
#: The same at the frequency of a 1 mm grid (:data:`GRID_MM`: the CT-GAN tool's, and most deep-learning
#: pipelines' isotropic voxels), tested alone: authentic CT series measured here 0.5-2.8 there; power
#: that is noise exceeds 8 times its median with odds of about 0.004 in one bin.
GRID_PEAK = 8.0
GRID_MM = 1.0
#: Frequencies (cycles per pixel) below this are anatomy and trends, not a grid's phase.
MIN_FREQUENCY = 0.04
#: Slices summed: about this many, evenly spaced (a series' every slice adds nothing but time).
SLICES = 48
#: Pixels counted: not clipped, and below bone (HU).
COUNTED_HU = (-1010.0, 300.0)
#: Rows or columns that hold fewer counted pixels than this fraction of the fullest are left out (the air
#: around the patient, beyond the field of view).
MIN_COVER = 0.2
#: Round intermediate grids (mm) named in a finding when the frequency fits one.
ROUND_GRIDS_MM = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
#: Score of the finding (medium evidence, as the metadata checks').
SCORE = 0.7
#: Frequencies (cycles per pixel) of lossy coding's own grids and how near a peak must be to count as the
#: coding's: JPEG's 8-pixel blocks and their harmonics (about 3 bins of a 512-pixel profile); JPEG 2000's
#: finest wavelet level (period 2) with the side bands of its 64-pixel code blocks (measured 0.485-0.494).
CODING_BANDS = ((0.125, 0.006), (0.25, 0.006), (0.375, 0.006), (0.5, 1.0 / 32.0))
#: ... and never nearer than this many bins of the profile's spectrum (a strong peak's window leaks into
#: its neighbours: the Hann window's main lobe is 2 bins wide on each side).
CODING_BINS = 3.0
#: Strength in those bands from which a series' pixels carry a lossy coding grid's trace
#: (:func:`coding_trace`). The middle 24 slices of 9 real CTs (session 50): lossless at most 16; JPEG 2000
#: at 10:1 52-56018 on 8 of 9 and at 20:1 70-91257 on all 9; 12-bit JPEG at quality 75 22-13418 on 7 of
#: 9; JPEG-LS near-lossless leaves none.
CODING_TRACE = 20.0


class GridTrace:
    """Residual energy summed per row and per column over every ``step``-th slice of a series of ``n``."""

    def __init__(self, n: int) -> None:
        self.step = max(1, -(-n // SLICES))
        self.rows: NDArray[np.float64] | None = None  # energy sums and pixel counts per row, per column
        self.cols: NDArray[np.float64] | None = None
        self.n_rows: NDArray[np.float64] | None = None
        self.n_cols: NDArray[np.float64] | None = None
        self.jpeg = JpegTrace(n)  # JPEG's other trace: quantised block DCT coefficients

    def add(self, z0: int, block: NDArray[Any]) -> None:
        """Slices ``z0, z0 + 1, ...`` of ``block`` (z, y, x; HU): those on the step are summed."""
        self.jpeg.add(z0, block)
        for k in range(len(block)):
            if (z0 + k) % self.step == 0 and block.shape[1] > 8 and block.shape[2] > 8:
                self._add(np.asarray(block[k], np.float32))

    def _add(self, img: NDArray[np.float32]) -> None:
        # the kernel of the dense detector's noise channel
        r = kv_residual(torch.from_numpy(img[None]))[0, 1:-1, 1:-1].numpy()  # without its edge padding
        inner = img[1:-1, 1:-1]
        counted = (inner > COUNTED_HU[0]) & (inner < COUNTED_HU[1])
        e = np.where(counted, r * r, 0.0)
        if self.rows is None or self.cols is None or self.n_rows is None or self.n_cols is None:
            self.rows, self.cols = np.zeros(e.shape[0]), np.zeros(e.shape[1])
            self.n_rows, self.n_cols = np.zeros(e.shape[0]), np.zeros(e.shape[1])
        if e.shape != (len(self.rows), len(self.cols)):  # a slice of another size: not summed
            return
        self.rows += e.sum(1)
        self.cols += e.sum(0)
        self.n_rows += counted.sum(1)
        self.n_cols += counted.sum(0)

    def profiles(self) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
        """Mean residual energy per covered row and per covered column, or None (nothing summed)."""
        if self.rows is None or self.cols is None or self.n_rows is None or self.n_cols is None:
            return None
        out: list[NDArray[np.float64]] = []
        for e, n in ((self.rows, self.n_rows), (self.cols, self.n_cols)):
            keep = n >= MIN_COVER * max(float(n.max()), 1.0)
            out.append(np.asarray(e[keep] / np.maximum(n[keep], 1.0), np.float64))
        return out[0], out[1]


def _spectrum(profile: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Frequencies (cycles per pixel, from :data:`MIN_FREQUENCY`) and power over the median power of the
    log profile less its running median (anatomy and trends)."""
    x = np.log(np.maximum(profile, 1e-6))
    x = x - ndimage.median_filter(x, 15, mode="nearest")
    power = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)))) ** 2
    freq = np.fft.rfftfreq(len(x))
    ok = freq >= MIN_FREQUENCY
    return np.asarray(freq[ok], np.float64), power[ok] / max(float(np.median(power[ok])), 1e-12)


def _shared(
    rows: NDArray[np.float64], cols: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """Frequencies and, at each, the weaker of the two profiles' spectra (the column spectrum taken at the
    row spectrum's frequencies, within a bin); None for profiles too short."""
    if min(len(rows), len(cols)) < 64:
        return None
    fy, py = _spectrum(rows)
    fx, px = _spectrum(cols)
    return fy, np.minimum(py, ndimage.maximum_filter1d(np.interp(fy, fx, px), 3))


def coding_frequency(frequency: float | NDArray[np.float64], bin_width: float = 0.0) -> Any:
    """Whether ``frequency`` (cycles per pixel) lies in one of lossy coding's bands (:data:`CODING_BANDS`,
    at least :data:`CODING_BINS` spectrum bins of ``bin_width`` wide on each side): a bool, or a mask for
    an array."""
    f = np.asarray(frequency, np.float64)
    centre, width = (np.asarray(c) for c in zip(*CODING_BANDS, strict=True))
    near = (np.abs(f[..., None] - centre) <= np.maximum(width, CODING_BINS * bin_width)).any(-1)
    return bool(near) if near.ndim == 0 else near


def _bin(shared: tuple[NDArray[np.float64], NDArray[np.float64]]) -> float:
    """The spectrum's bin width (cycles per pixel)."""
    return float(shared[0][1] - shared[0][0]) if len(shared[0]) > 1 else 0.0


def coding_peak(trace: GridTrace) -> tuple[float, float]:
    """(frequency, strength) of the strongest shared peak (see :func:`periodicity`) in lossy coding's bands:
    from :data:`CODING_TRACE` the pixels carry a coding grid (or, rarely, a resampling grid that falls
    there); (0, 0) when nothing was summed."""
    found = trace.profiles()
    shared = None if found is None else _shared(*found)
    if shared is None:
        return 0.0, 0.0
    mask = coding_frequency(shared[0], _bin(shared))
    if not mask.any():
        return 0.0, 0.0
    k = int(np.argmax(np.where(mask, shared[1], -np.inf)))
    return float(shared[0][k]), float(shared[1][k])


def coding_trace(trace: GridTrace) -> float:
    """The strength of :func:`coding_peak`."""
    return coding_peak(trace)[1]


def coding_grid(frequency: float) -> str:
    """Which lossy coding's grid repeats at ``frequency`` (cycles per pixel; see :data:`CODING_BANDS`)."""
    centre, width = CODING_BANDS[-1]  # JPEG 2000's; the others are JPEG's block harmonics
    return "JPEG 2000's finest wavelet level" if abs(frequency - centre) <= width else "JPEG's 8-pixel blocks"


def _peak(
    shared: tuple[NDArray[np.float64], NDArray[np.float64]] | None, coding: bool
) -> tuple[float, float]:
    """(frequency, strength) of the largest of :func:`_shared`'s strengths, away from lossy coding's
    frequencies (:func:`coding_frequency`) unless ``coding`` is False; (0, 0) for none."""
    if shared is None:
        return 0.0, 0.0
    skip = coding_frequency(shared[0], _bin(shared)) if coding else np.zeros(len(shared[0]), bool)
    strength = np.where(skip, 0.0, shared[1])
    k = int(np.argmax(strength))
    return float(shared[0][k]), float(strength[k])


def _strength_near(shared: tuple[NDArray[np.float64], NDArray[np.float64]] | None, frequency: float) -> float:
    """The greatest of :func:`_shared`'s strengths within a bin of ``frequency``; 0 below
    :data:`MIN_FREQUENCY` or for none."""
    if shared is None or frequency < MIN_FREQUENCY:
        return 0.0
    k = int(np.argmin(np.abs(shared[0] - frequency)))
    return float(shared[1][max(0, k - 1) : k + 2].max())


def periodicity(
    rows: NDArray[np.float64], cols: NDArray[np.float64], coding: bool = False
) -> tuple[float, float]:
    """(frequency, strength) of the strongest peak that the row and the column profiles share (``coding``:
    away from lossy coding's frequencies): strength is the weaker spectrum's power there, over its median.
    (0, 0) for profiles too short."""
    return _peak(_shared(rows, cols), coding)


def grid_frequency(pixel_mm: float, grid_mm: float) -> float:
    """The frequency (cycles per pixel, 0-0.5) at which a ``grid_mm`` grid's phase repeats along pixels of
    ``pixel_mm``."""
    f = (pixel_mm / grid_mm) % 1.0
    return float(min(f, 1.0 - f))


def strength_at(rows: NDArray[np.float64], cols: NDArray[np.float64], frequency: float) -> float:
    """The shared strength (see :func:`periodicity`) at ``frequency`` (the greatest within a bin of it);
    0 below :data:`MIN_FREQUENCY` or for profiles too short."""
    return _strength_near(_shared(rows, cols), frequency)


def _round_grid(frequency: float, pixel_mm: float) -> float | None:
    """A round grid (:data:`ROUND_GRIDS_MM`) whose phase along pixels of ``pixel_mm`` repeats at
    ``frequency`` (within 3 %), or None."""
    for grid in ROUND_GRIDS_MM:
        if abs(grid_frequency(pixel_mm, grid) - frequency) <= 0.03 * max(frequency, 0.05):
            return grid
    return None


def resampled_finding(trace: GridTrace, pixel_mm: float, lossy: bool | None = None) -> Finding | None:
    """A ``metadata`` finding (check ``resampled``) when the series' pixels carry a resampling grid's phase
    (:func:`periodicity` at least :data:`PEAK`, or :func:`strength_at` a 1 mm grid's frequency at least
    :data:`GRID_PEAK`), else None. Lossy coding's bands (:func:`coding_frequency`) are searched only when
    ``lossy`` is False (a DICOM series that records no lossy coding and is not lossy-encoded): on a lossy
    series, or a file that cannot say (NIfTI, MHD), a grid there cannot be told from the coding's."""
    found = trace.profiles()
    if found is None:
        return None
    shared = _shared(*found)  # both spectra, once
    frequency, strength = _peak(shared, lossy is not False)
    at_grid = grid_frequency(pixel_mm, GRID_MM)
    coding = shared is not None and lossy is not False and coding_frequency(at_grid, _bin(shared))
    on_grid = 0.0 if coding else _strength_near(shared, at_grid)
    if strength < PEAK and on_grid < GRID_PEAK:
        return None
    if strength < PEAK:
        frequency, strength = at_grid, on_grid
    grid = _round_grid(frequency, pixel_mm)
    via = (
        f", as a pass through {grid:g} mm voxels and back leaves on {pixel_mm:.3g} mm pixels" if grid else ""
    )
    text = (
        f"the pixels' noise energy repeats every {1.0 / frequency:.2f} pixels along rows and columns "
        f"({strength:.0f} times the spectrum's median): interpolated from another grid after "
        f"reconstruction{via} (the CT-GAN tool resamples a whole scan to 1 mm voxels and back; a scanner's "
        "own series is not resampled)"
    )
    return Finding("metadata", SCORE, description=text, check="resampled")
