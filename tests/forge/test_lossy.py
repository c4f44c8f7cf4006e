"""Lossy coding of CT slices (forge.lossy): what an archive storing a series lossy hands back."""

from __future__ import annotations

import numpy as np
import pytest

from medforensics.forge.lossy import DEFAULT_LOSSY_CODECS, lossy_copy
from tests.scan._helpers import chest


def test_lossy_copies_change_the_pixels_within_each_codecs_bound() -> None:
    """JPEG-LS near-lossless keeps every pixel within its error bound (3 stored units, 1 HU each); JPEG
    2000 at 20:1 loses more than at 10:1; the 12-bit layout clips to -1024..3071 HU."""
    part = np.asarray(chest().array[60:62], np.float32)
    part[0, 0, :8] = -2000.0  # outside the 12-bit range: clipped, as an archive's 12-bit copy would be
    held = np.clip(np.round(part), -1024, 3071)
    err = {}
    for codec in DEFAULT_LOSSY_CODECS:
        out = lossy_copy(part, codec)
        assert out.shape == part.shape and out.dtype == np.float32
        err[codec] = float(np.sqrt(np.mean((out - held) ** 2)))
        assert out[0, 0, :8].min() >= -1024.0 - (3 if codec == "jls-3" else 100)
    assert float(np.abs(lossy_copy(part, "jls-3") - held).max()) <= 3.0
    assert 0.0 < err["jls-3"] < err["j2k-10"] < err["j2k-20"]


def test_an_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown lossy codec"):
        lossy_copy(np.zeros((1, 8, 8), np.float32), "jpeg-99")


def test_twelve_bit_jpeg_needs_dcmtk_and_codes_like_an_archive() -> None:
    import shutil

    from medforensics.forge.lossy import missing_coder

    assert missing_coder(DEFAULT_LOSSY_CODECS) is None  # pydicom's own encoders: nothing outside Python
    if shutil.which("dcmcjpeg") is None or shutil.which("dcmdjpeg") is None:
        assert "apt-get install dcmtk" in (missing_coder(["jpeg-75"]) or "")
        pytest.skip("DCMTK not installed")
    assert missing_coder(["jpeg-90", "jpeg-75"]) is None
    part = np.asarray(chest().array[60:62], np.float32)
    held = np.clip(np.round(part), -1024, 3071)
    rms = {c: float(np.sqrt(np.mean((lossy_copy(part, c) - held) ** 2))) for c in ("jpeg-90", "jpeg-75")}
    assert 0.0 < rms["jpeg-90"] < rms["jpeg-75"] < 100.0


def test_a_config_naming_a_codec_whose_program_is_missing_is_refused_before_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from medforensics.errors import ConfigError
    from medforensics.train.dense import check_counts
    from medforensics.train.dense_config import DenseConfig

    monkeypatch.setattr("medforensics.forge.lossy.shutil.which", lambda _name: None)
    with pytest.raises(ConfigError, match="needs DCMTK's dcmcjpeg"):
        check_counts(DenseConfig(data="x", out="y", lossy_codecs=["j2k-10", "jpeg-90"]))
    check_counts(DenseConfig(data="x", out="y"))  # the default needs nothing outside Python
