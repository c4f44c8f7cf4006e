"""Single images scored by the bundled 2-D synthesis detector: real ones authentic, DCGAN fakes synthetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medforensics.io.reader import read_volume
from medforensics.io.volume import Volume
from medforensics.scan.detector import Detector
from medforensics.scan.image2d import detector_input, normalise_2d
from medforensics.scan.pipeline import scan_volume


@pytest.fixture(scope="module")
def det2d() -> Detector:
    return Detector.default("detector2d")


def _testdata(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom-data {name} not installed")
    return Path(str(path))


def test_real_images_authentic_and_dcgan_samples_synthetic(
    tmp_path: Path, det2d: Detector, detector: Detector
) -> None:
    """Real radiographs (a MONOCHROME1 CR, as DICOM and as an 8-bit PNG), a real MR slice and real CT slices
    are authentic; the bundled DCGAN's X-ray, MR and CT samples (saved as the scan would read them: PNG,
    MR intensities, HU) are synthetic. The raw pixels (CR values in the thousands, HU) must be normalised
    as in training: scored raw, every image was 'authentic'."""
    from medforensics.forge.dcgan import bundled_weights, generate, load_generator
    from medforensics.forge.dcgan_data import ct_unwindow

    rg1 = read_volume(_testdata("RG1_UNCR.dcm"))
    mr2 = read_volume(_testdata("MR2_UNCR.dcm"))
    png = tmp_path / "rg1.png"
    Image.fromarray(np.clip(np.asarray(rg1.array[0]) / 128, 0, 255).astype(np.uint8)).save(png)
    real = {"rg1": rg1, "rg1 png": read_volume(png), "mr2": mr2}
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
        assert res.extra["detector"]["name"] == det2d.info.name == "cnn"
        assert res.extra["input"].startswith("whole image")
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
