"""Single images scored by the bundled 2-D synthesis detector: real ones authentic, DCGAN fakes synthetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medforensics.io.reader import read_volume
from medforensics.io.volume import Volume
from medforensics.models.inference import bf16_native
from medforensics.scan.detector import Detector
from medforensics.scan.image2d import SERIES_SLICE_THRESHOLD, detector_input, mr_threshold, normalise_2d
from medforensics.scan.pipeline import scan_volume
from medforensics.scan.result import ModelInfo, scored_by
from tests._testdata import pydicom_testdata


def test_real_images_authentic_and_dcgan_samples_synthetic(
    tmp_path: Path, det2d: Detector, detector: Detector
) -> None:
    """Real radiographs (a MONOCHROME1 CR, as DICOM and as an 8-bit PNG), a real MR slice and real CT slices
    are authentic; the bundled DCGAN's X-ray, MR and CT samples (saved as the scan would read them: PNG,
    MR intensities, HU) are synthetic. The raw pixels (CR values in the thousands, HU) must be normalised
    as in training: scored raw, every image was 'authentic'."""
    from medforensics.forge.dcgan import bundled_weights, generate, load_generator
    from medforensics.forge.dcgan_data import ct_unwindow

    rg1 = read_volume(pydicom_testdata("RG1_UNCR.dcm"))
    mr2 = read_volume(pydicom_testdata("MR2_UNCR.dcm"))
    png = tmp_path / "rg1.png"
    Image.fromarray(np.clip(np.asarray(rg1.array[0]) / 128, 0, 255).astype(np.uint8)).save(png)
    # MR_small: a real 64 x 64 MR slice scoring 0.0046, over the calibrated 0.0021, under the MR cut-off
    real = {
        "rg1": rg1,
        "rg1 png": read_volume(png),
        "mr2": mr2,
        "mr small": read_volume(pydicom_testdata("MR_small.dcm")),
    }
    from tests.scan._helpers import ct_crop

    ct = ct_crop(nz=2)
    for k in range(2):
        real[f"ct {k}"] = ct.with_array(np.asarray(ct.array)[k : k + 1], spacing=ct.spacing)
    fake: dict[str, Volume] = {}
    for mod, modality in (("xray", "DX"), ("mr", "MR"), ("ct", "CT")):
        samples = generate(load_generator(bundled_weights(mod)), 2, seed=7)
        for i, s in enumerate(samples):
            if mod == "xray":  # as forge synthesize writes X-rays: an 8-bit PNG
                path = tmp_path / f"syn{i}.png"
                Image.fromarray(((np.clip(s, -1, 1) + 1) * 127.5).astype(np.uint8)).save(path)
                fake[f"{mod} {i}"] = read_volume(path)
            else:
                arr = ct_unwindow(s) if mod == "ct" else (np.clip(s, -1, 1) + 1) * 700.0
                fake[f"{mod} {i}"] = Volume(arr[None].astype(np.float32), modality=modality)
    for name, vol in {**real, **fake}.items():
        res = scan_volume(vol, detector, detector2d=det2d, path=name)
        want = "synthetic" if name in fake else "authentic"
        assert res.verdict == want, (name, res.score, res.error)
        assert res.extra["detector"]["name"] == det2d.info.name == "cnn_ensemble"
        assert res.extra["input"].startswith("whole image")
        mr = vol.modality == "MR"  # MR images are held to the MR slice cut-off, the others to the calibration
        assert res.extra["threshold"] == (
            mr_threshold(det2d) if mr else det2d.calibration.operating_threshold
        )
        if want == "synthetic":
            assert res.label == "SYN" and [f.type for f in res.findings] == ["synthetic"]


def test_detector_input_normalises_as_in_training() -> None:
    """CT by the [-1000, 400] HU window; anything else by its 0.5-99.5 percentiles (a large image's from a
    grid sample); whole images area-averaged to the input size."""
    hu = np.array([[-2000.0, -1000.0], [-300.0, 400.0]], np.float32)
    np.testing.assert_allclose(normalise_2d(hu, "CT"), [[0.0, 0.0], [0.5, 1.0]], atol=1e-6)
    ramp = np.tile(np.arange(3000, dtype=np.float32), (2000, 1))  # 6 M pixels: percentiles sampled
    out = normalise_2d(ramp, "DX")
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert abs(float(out[0, 1500]) - 0.5) < 0.01
    assert normalise_2d(np.full((4, 4), 7.0), "MR").max() == 0.0  # flat: no division by zero
    checker = np.indices((128, 128)).sum(0) % 2 * 1000.0  # pixel-level noise: area averaging keeps its mean
    small = detector_input(checker, "DX", 64)
    assert small.shape == (64, 64) and np.allclose(small, 0.5)


def _mr_samples(n: int, seed: int) -> np.ndarray:
    """``n`` DCGAN MR samples as MR intensities (0-1400), as ``forge synthesize --modality mr`` does."""
    from medforensics.forge.dcgan import bundled_weights, generate, load_generator

    s = generate(load_generator(bundled_weights("mr")), n, seed=seed)
    return ((np.clip(s, -1, 1) + 1) * 700.0).astype(np.float32)


def test_mr_series_scored_slice_by_slice(det2d: Detector, detector: Detector) -> None:
    """A real MR series (pydicom-data's emri_small, 10 frames) is authentic; the same series with two frames
    replaced by DCGAN MR slices is synthetic with one finding at each of them (slice index in center_voxel
    and bbox_voxel); a series wholly of DCGAN slices is synthetic; blank slices are not assessed. Before,
    every MR series was 'modality MR: the detector scores CT volumes'."""
    emri = read_volume(pydicom_testdata("emri_small.dcm"))
    real = scan_volume(emri, detector, detector2d=det2d)
    assert real.verdict == "authentic" and real.findings == [], (real.error, real.score)
    assert real.extra["slices_assessed"] == 10 and real.extra["slices_synthetic"] == 0
    assert real.extra["detector"]["name"] == "cnn_ensemble" and real.extra["input"].startswith("each slice")
    # the arithmetic the 2-D detector ran in is recorded with it, and the SR's identification takes it
    ran = "bf16" if bf16_native("cpu") else "fp32"
    assert det2d.precision == "bf16" and real.extra["detector"]["precision"] == ran
    assert scored_by(real, ModelInfo("ct", "1", "0" * 64)).precision == ran
    arr = np.asarray(emri.array).copy()
    lo, hi = np.percentile(arr, [0.5, 99.5])
    arr[[3, 7]] = lo + _mr_samples(2, seed=11) / 1400.0 * (hi - lo)
    arr[9] = 0.0  # a blank slice (0.997 from the detector) is not assessed
    mixed = scan_volume(emri.with_array(arr, spacing=emri.spacing), detector, detector2d=det2d)
    assert mixed.verdict == "synthetic" and mixed.label == "SYN", mixed.extra.get("slice_scores")
    assert sorted(f.center_voxel[0] for f in mixed.findings) == [3, 7]
    assert all(f.type == "synthetic" and f.bbox_voxel[0] + 1 == f.bbox_voxel[3] for f in mixed.findings)
    assert mixed.extra["slices_assessed"] == 9 and mixed.extra["slice_scores"][9] is None
    # every real frame ranks under both DCGAN frames (the verdict alone only says under the cut-off)
    assert real.score < min(mixed.extra["slice_scores"][k] for k in (3, 7)), (real.score, mixed.extra)
    fake = scan_volume(Volume(_mr_samples(6, seed=12), modality="MR"), detector, detector2d=det2d)
    assert fake.verdict == "synthetic" and fake.extra["slices_synthetic"] == 6 and len(fake.findings) == 5


def test_the_mr_cut_off_is_the_detectors_own(det2d: Detector, detector: Detector, tmp_path: Path) -> None:
    """The MR cut-off belongs to the Platt map it was set with: the bundled calibration.json sets its own; a
    folder without one is held to the constant (0.999, the first bundled model's), one that sets another is
    held to it, and one outside [0, 1] is refused. Before, every 2-D detector was held to the constant."""
    import json
    import shutil

    from medforensics.errors import InputError
    from medforensics.scan.detector import bundled_dir, load_detector

    own_cut = det2d.calibration.mr_slice_threshold
    assert own_cut is not None and mr_threshold(det2d) == own_cut
    fake = Volume(_mr_samples(3, seed=12), modality="MR")
    res = scan_volume(fake, detector, detector2d=det2d)
    assert res.verdict == "synthetic" and res.extra["threshold"] == own_cut
    own = tmp_path / "det2d"
    shutil.copytree(bundled_dir("detector2d"), own)
    cal = json.loads((own / "calibration.json").read_text())
    (own / "calibration.json").write_text(
        json.dumps({k: v for k, v in cal.items() if k != "mr_slice_threshold"})
    )
    assert mr_threshold(load_detector(own)) == SERIES_SLICE_THRESHOLD
    (own / "calibration.json").write_text(json.dumps({**cal, "mr_slice_threshold": 1.0}))
    strict = load_detector(own)
    res = scan_volume(fake, detector, detector2d=strict)
    assert mr_threshold(strict) == 1.0 and res.verdict == "authentic" and res.extra["threshold"] == 1.0
    assert res.extra["series_rule"].endswith(">= 1.0")
    (own / "calibration.json").write_text(json.dumps({**cal, "mr_slice_threshold": 1.5}))
    with pytest.raises(InputError, match=r"must lie in \[0, 1\]"):
        load_detector(own)


def test_mr_series_of_small_slices_gets_a_reason(det2d: Detector, detector: Detector) -> None:
    """nibabel's anatomical.nii (25 slices of 33 x 41): too small for the 64-pixel 2-D detector."""
    import nibabel

    vol = read_volume(Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii")
    res = scan_volume(vol, detector, detector2d=det2d)
    assert res.error.startswith("MR series of 25 slices of 33 x 41 pixels"), res.error


def test_a_lossy_compressed_single_image_gets_the_lossy_finding(det2d: Detector, detector: Detector) -> None:
    """Series got a `lossy_compression` metadata finding, single images did not: pydicom's MR2_J2KI (an MR
    slice in irreversible JPEG 2000) now does, saying what it means for the 2-D detector; the same image
    stored losslessly (MR2_J2KR) gets none."""
    lossy = scan_volume(
        read_volume(pydicom_testdata("MR2_J2KI.dcm")), detector, detector2d=det2d, path="lossy"
    )
    (found,) = [f for f in lossy.findings if f.check == "lossy_compression"]
    assert found.type == "metadata" and "irreversible (9/7) wavelet" in str(found.description)
    assert "2-D detector" in str(found.description) and "lossless CT" not in str(found.description)
    lossless = scan_volume(
        read_volume(pydicom_testdata("MR2_J2KR.dcm")), detector, detector2d=det2d, path="lossless"
    )
    assert lossless.verdict == "authentic" and not lossless.findings


def test_a_single_image_with_almost_no_signal_is_not_scored(det2d: Detector, detector: Detector) -> None:
    """Real Siemens MR scouts of a phantom hold values 0-6 and 0-9 (heudiconv's test data): scored as single
    images they came out synthetic at 1.0 (benchmarks/mr_false_alarms.py), as label maps would, which volumes
    were already refused for. pydicom's MR_small divided down to 7 levels stands for them: refused with the
    label-map reason; the image itself is still scored."""
    mr = read_volume(pydicom_testdata("MR_small.dcm"))
    levels = np.floor((np.asarray(mr.array) - 127.0) / 300.0)  # MR_small's 127-2145 as 0-6
    res = scan_volume(mr.with_array(levels, spacing=mr.spacing), detector, detector2d=det2d)
    assert res.verdict == "error" and res.score is None and res.findings == [], (res.score, res.error)
    assert res.error.startswith("7 distinct integer values, not image intensities"), res.error
    assert "almost no signal" in res.error
    real = scan_volume(mr, detector, detector2d=det2d)
    assert real.verdict == "authentic" and real.error is None


def _xray_fake(seed: int, factor: int) -> np.ndarray:
    """A DCGAN X-ray sample as 8-bit stored pixels, each pixel repeated ``factor`` x ``factor`` (area
    resizing to the detector's 64 x 64 gives the sample back exactly)."""
    from medforensics.forge.dcgan import bundled_weights, generate, load_generator

    s = generate(load_generator(bundled_weights("xray")), 1, seed=seed)[0]
    px = ((np.clip(s, -1, 1) + 1) * 127.5).astype(np.uint16)
    return np.kron(px, np.ones((factor, factor), np.uint16))


def test_radiograph_series_scored_image_by_image(tmp_path: Path, det2d: Detector, detector: Detector) -> None:
    """A CR series of a real chest radiograph, the same turned a quarter (another size) and a DCGAN X-ray
    (256 x 256): synthetic, with one finding on the DCGAN image only, over its own size; each image scores as
    it does alone (the padding the reader adds is not scored). The two real views alone: authentic; a blank
    exposure is not assessed. Before, such a series was refused ("image size ... differs"; one of a single
    size: "the detector scores CT volumes")."""
    from tests.io._radiographs import rg1_pixels, write_radiographs

    px = rg1_pixels()
    files = write_radiographs(tmp_path / "mixed", [px, np.rot90(px), _xray_fake(7, 4)], bits=[15, 15, 8])
    mixed = scan_volume(read_volume(tmp_path / "mixed"), detector, detector2d=det2d)
    assert mixed.verdict == "synthetic" and mixed.label == "SYN", (mixed.error, mixed.extra)
    assert [(f.type, f.center_voxel, f.bbox_voxel) for f in mixed.findings] == [
        ("synthetic", (2, 128, 128), (2, 0, 0, 3, 256, 256))
    ]
    assert mixed.extra["threshold"] == det2d.calibration.operating_threshold
    assert mixed.extra["input"].startswith("each image") and mixed.extra["slices_synthetic"] == 1
    for k, f in enumerate(files):
        alone = scan_volume(read_volume(f), detector, detector2d=det2d)
        assert mixed.extra["slice_scores"][k] == pytest.approx(alone.score, abs=1e-5), k
    write_radiographs(tmp_path / "real", [px, np.rot90(px)])
    real = scan_volume(read_volume(tmp_path / "real"), detector, detector2d=det2d)
    assert real.verdict == "authentic" and real.findings == [], real.extra
    assert real.extra["slice_scores"] == mixed.extra["slice_scores"][:2]
    write_radiographs(tmp_path / "blank", [px, np.zeros_like(px)])
    blank = scan_volume(read_volume(tmp_path / "blank"), detector, detector2d=det2d)
    assert blank.verdict == "authentic" and blank.extra["slice_scores"][1] is None
    assert blank.extra["slices_assessed"] == 1


def test_a_ct_slice_that_does_not_read_as_hu_is_not_assessed(det2d: Detector, detector: Detector) -> None:
    """A single real CT slice is scored; the same slice shifted by -1024 HU (an intercept applied twice,
    which the 2-D detector took for synthesis) or stored as 8-bit display values is not assessed, with the
    air level it read."""
    from tests.scan._helpers import chest

    v = chest()
    real = Volume(np.asarray(v.array[66:67], np.float32), spacing=v.spacing, modality="CT")
    res = scan_volume(real, detector, detector2d=det2d, explain=None)
    assert res.verdict == "authentic" and res.error is None
    for odd in (real.array - 1024.0, np.round(np.clip((real.array + 1000.0) / 1400.0 * 255.0, 0, 255))):
        res = scan_volume(real.with_array(odd), detector, detector2d=det2d, explain=None)
        assert res.verdict == "error" and res.not_assessed
        assert "do not read as HU (darkest tissue about" in str(res.error)
