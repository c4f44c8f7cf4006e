"""Pixels decoded from JPEG: the quantisation of their 8 x 8 block DCT coefficients.

A JPEG coder (baseline or 12-bit "JPEG Extended", the lossy transfer syntaxes archives keep CT in) divides
the DCT coefficients of every 8 x 8 block by a step of its quantisation table and rounds them. Decoded to
integers, the block coefficients of such pixels still sit within rounding error (about 0.3) of multiples of
that step, while those of a lossless CT spread over every value (Fan & de Queiroz 2003, "Identification of
bitmap compression history"). :class:`JpegTrace` keeps a few slices in the scan's pass (beside
:class:`~medforensics.scan.resampling.GridTrace`) and, only when asked, takes the low-frequency DCT
coefficients of their blocks on the image's own 8 x 8 grid; :meth:`JpegTrace.coherence` is how tightly they
sit on their best step: the modulus of the mean of exp(2 pi i c / q), near 0 for lossless pixels, near 1 for
JPEG.

At quality 90 JPEG's blocks leave too little periodic residual energy for the coding-grid trace
(:func:`~medforensics.scan.resampling.coding_trace` 3.5-36 on four real CTs, threshold 20; lossless 3-5),
while the coherence separates them (session 59: 9 real CTs as stored 0.01-0.07; four of them coded 12-bit
JPEG q90 0.58-0.74, q75 0.78-0.96, JPEG 2000 at 20:1, which has no 8 x 8 blocks, 0.06-0.11).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.fft import dctn

#: Slices whose blocks are gathered (evenly spread); a few are enough.
SLICES = 4
#: Low-frequency AC coefficients read, (row, column) of the 8 x 8 DCT: the steps JPEG gives them are small
#: enough at high quality to be found, and they are large in CT noise.
FREQUENCIES = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 1), (2, 2))
#: Quantisation steps tried (JPEG quality 95 to about 40 gives the low frequencies steps of 2 to 16).
STEPS = tuple(range(2, 17))
#: A step is only tried where the coefficients spread over several of it (coefficients all within a step
#: of 0 sit near a multiple of any large step).
MIN_SPREAD = 2.0
#: Blocks flatter than this (stored-value standard deviation) are left out: padding and clipped air.
MIN_BLOCK_STD = 1.0
#: Fewest blocks a coherence is read from.
MIN_BLOCKS = 200
#: Coherence at which a series' pixels count as JPEG-decoded (lossless CT at most 0.15, JPEG q90 0.61).
JPEG_COHERENCE = 0.4


class JpegTrace:
    """:data:`SLICES` slices of a series of ``n``, kept during the scan's pass; the DCT of their 8 x 8 blocks
    is taken only when :meth:`coherence` is asked (a series that records no lossy coding never asks), once."""

    def __init__(self, n: int) -> None:
        self.keep = {int(z) for z in np.linspace(0, max(n - 1, 0), min(SLICES, max(n, 1)))}
        self.slices: list[NDArray[Any]] = []
        self._coherence: tuple[float, int] | None = None

    def add(self, z0: int, block: NDArray[Any]) -> None:
        """Slices ``z0, z0 + 1, ...`` of ``block`` (z, y, x; HU): those kept are copied."""
        for k in range(len(block)):
            if z0 + k in self.keep:
                self.slices.append(np.array(block[k], copy=True))
                self._coherence = None

    def _coefficients(self) -> NDArray[np.float64]:
        """The :data:`FREQUENCIES` coefficients of every block that is not flat, one row a block."""
        out = []
        for img in self.slices:
            h, w = (img.shape[0] // 8) * 8, (img.shape[1] // 8) * 8
            if h == 0 or w == 0:
                continue
            pixels = np.round(img[:h, :w].astype(np.float64))
            blocks = pixels.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
            blocks = blocks[blocks.std(axis=(1, 2)) > MIN_BLOCK_STD]
            if len(blocks):
                c = dctn(blocks, axes=(1, 2), norm="ortho")  # JPEG's DCT is the orthonormal one
                out.append(np.stack([c[:, u, v] for u, v in FREQUENCIES], axis=1))
        return np.concatenate(out) if out else np.zeros((0, len(FREQUENCIES)))

    def coherence(self) -> tuple[float, int]:
        """(median over :data:`FREQUENCIES` of the best step's coherence, the most frequent best step);
        (0.0, 0) when fewer than :data:`MIN_BLOCKS` blocks were read."""
        if self._coherence is None:
            self._coherence = _coherence(self._coefficients())
        return self._coherence


def _coherence(c: NDArray[np.float64]) -> tuple[float, int]:
    if len(c) < MIN_BLOCKS:
        return 0.0, 0
    best, steps = [], []
    for x in c.T:
        spread = float(np.std(x))
        tried = [q for q in STEPS if spread >= MIN_SPREAD * q]
        if not tried:
            best.append(0.0)
            continue
        coh = [float(np.abs(np.mean(np.exp(2j * np.pi * x / q)))) for q in tried]
        k = int(np.argmax(coh))
        best.append(coh[k])
        steps.append(tried[k])
    step = max(set(steps), key=steps.count) if steps else 0
    return float(np.median(best)), step


def jpeg_decoded(trace: JpegTrace) -> bool:
    """Whether the gathered blocks' coefficients sit on a JPEG quantisation lattice."""
    return trace.coherence()[0] >= JPEG_COHERENCE
