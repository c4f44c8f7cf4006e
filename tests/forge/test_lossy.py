"""Lossy coding of CT slices (forge.lossy): what an archive storing a series lossy hands back."""

from __future__ import annotations

import numpy as np
import pytest

from medforensics.forge.lossy import LOSSY_CODECS, lossy_copy
from tests.scan._helpers import chest


def test_lossy_copies_change_the_pixels_within_each_codecs_bound() -> None:
    """JPEG-LS near-lossless keeps every pixel within its error bound (3 stored units, 1 HU each); JPEG
    2000 at 20:1 loses more than at 10:1; the 12-bit layout clips to -1024..3071 HU."""
    part = np.asarray(chest().array[60:62], np.float32)
    part[0, 0, :8] = -2000.0  # outside the 12-bit range: clipped, as an archive's 12-bit copy would be
    held = np.clip(np.round(part), -1024, 3071)
    err = {}
    for codec in LOSSY_CODECS:
        out = lossy_copy(part, codec)
        assert out.shape == part.shape and out.dtype == np.float32
        err[codec] = float(np.sqrt(np.mean((out - held) ** 2)))
        assert out[0, 0, :8].min() >= -1024.0 - (3 if codec == "jls-3" else 100)
    assert float(np.abs(lossy_copy(part, "jls-3") - held).max()) <= 3.0
    assert 0.0 < err["jls-3"] < err["j2k-10"] < err["j2k-20"]


def test_an_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown lossy codec"):
        lossy_copy(np.zeros((1, 8, 8), np.float32), "jpeg-99")
