"""What a CT model was trained on, and the caveat a series outside it gets.

A trained dense model's ``metrics.json`` records the voxel sizes of the CTs it trained and validated on
(``data_spacing``: ``{"pixel_mm": [lo, hi], "slice_mm": [lo, hi]}``, :func:`spacing_range`). A series that
``scan`` assesses (inside ``max_pixel_mm`` / ``max_slice_mm``) but whose pixels or slice spacing lie outside
that range is scored as usual, and its result carries ``extra["caveats"]``: one line each, saying so
(the model card says what the model finds on such series where that was measured).
Session 34 measured why it matters: the bundled model, trained on 0.68-0.82 mm pixels, found 65 of 80
attacks on its CTs at their own pixels and 55-56 of 80 on the same CTs resampled to 0.9-1.0 mm, and 2 of 8
on another source's CT with 3 mm slices and 0.98 mm pixels (``benchmarks/scan_accuracy/README.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from medforensics._json import finite_numbers
from medforensics.errors import InputError

#: Relative slack before a voxel size counts as outside the training range (rounding in headers).
TOLERANCE = 0.03
KEYS = ("pixel_mm", "slice_mm")


def spacing_range(spacings: Iterable[tuple[float, float, float]]) -> dict[str, list[float]]:
    """``{"pixel_mm": [lo, hi], "slice_mm": [lo, hi]}`` of full-resolution ``(z, y, x)`` spacings (the
    pixel: the larger in-plane size); empty when there are none."""
    pixels, slices = [], []
    for z, y, x in spacings:
        pixels.append(max(y, x))
        slices.append(z)
    if not pixels:
        return {}
    return {
        "pixel_mm": [round(min(pixels), 4), round(max(pixels), 4)],
        "slice_mm": [round(min(slices), 4), round(max(slices), 4)],
    }


def read_spacing_range(metrics: Mapping[str, Any], path: str | Path) -> dict[str, tuple[float, float]]:
    """``metrics["data_spacing"]`` checked (each key two positive numbers, low <= high); {} when absent.
    A malformed one is an :class:`InputError` naming ``path``."""
    raw = metrics.get("data_spacing")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or set(raw) - set(KEYS):
        raise InputError(f"data_spacing must map {' and '.join(KEYS)} to [low, high], not {raw!r}", path=path)
    out = {}
    for key, value in raw.items():
        pair = finite_numbers(value, 2)
        if pair is None or not 0 < pair[0] <= pair[1]:
            raise InputError(f"data_spacing {key} must be [low, high] in mm, not {value!r}", path=path)
        out[key] = (pair[0], pair[1])
    return out


def spacing_caveats(
    spacing: tuple[float, float, float], trained: Mapping[str, tuple[float, float]]
) -> list[str]:
    """One line per voxel size of a series (``(z, y, x)`` mm, axial layout) outside the ``trained`` range
    (:func:`read_spacing_range`) by more than :data:`TOLERANCE`."""
    sizes = {
        "pixel_mm": (max(spacing[1], spacing[2]), "pixels {:.2f} mm", ("coarser", "finer"), " pixels"),
        "slice_mm": (spacing[0], "slices {:.2f} mm apart", ("farther apart", "closer"), ""),
    }
    out = []
    for key, (value, what, (above, below), theirs) in sizes.items():
        if key not in trained:
            continue
        lo, hi = trained[key]
        if lo * (1 - TOLERANCE) <= value <= hi * (1 + TOLERANCE):
            continue
        out.append(
            f"{what.format(value)}, {above if value > hi else below} than the {lo:.2f}-{hi:.2f} mm{theirs} "
            "of the CTs this model was trained on: scored, but outside what its validation figures cover "
            "(its model card says what it finds on such series where measured)"
        )
    return out
