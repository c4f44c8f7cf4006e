"""Header fallbacks of the DICOM reader, each recorded as a reader warning (io/dicom_tags.py)."""

from __future__ import annotations

from pathlib import Path

import pydicom

from medforensics.io.dicom import read_dicom_header, read_dicom_series
from medforensics.scan.pipeline import route_error
from tests._testdata import pydicom_testdata


def test_zero_pixel_spacing_falls_back_to_1_mm_with_a_warning() -> None:
    """pydicom-data's RG1_UNCR.dcm has PixelSpacing 0\\0: 1 mm assumed, as before, but no longer silently."""
    layout = read_dicom_header(pydicom_testdata("RG1_UNCR.dcm"))
    assert layout.spacing[1:] == (1.0, 1.0)
    assert any(w.startswith("PixelSpacing 0.000\\0.000: not a pixel spacing, 1 mm") for w in layout.warnings)
    assert not any("PixelSpacing" in w for w in read_dicom_header(pydicom_testdata("CT_small.dcm")).warnings)


def test_missing_modality_is_inferred_from_the_sop_class_or_said(tmp_path: Path) -> None:
    """No Modality tag: a CR's SOP class gives CR (with a warning); without a known SOP class it is OT and
    scan's reason says 'no Modality tag' instead of 'modality OT'."""
    ds = pydicom.dcmread(pydicom_testdata("MR_small.dcm"))
    del ds.Modality
    ds.save_as(tmp_path / "mr.dcm")
    vol = read_dicom_series(tmp_path / "mr.dcm")
    assert vol.modality == "MR"
    want = "no Modality tag: MR assumed from its SOP class 1.2.840.10008.5.1.4.1.1.4"
    assert want in vol.metadata["warnings"]
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture: no modality implied
    ds.save_as(tmp_path / "sc.dcm")
    vol = read_dicom_series(tmp_path / "sc.dcm")
    assert vol.modality == "OT" and any(w.startswith("no Modality tag") for w in vol.metadata["warnings"])
    reason = route_error(vol, None)
    assert reason is not None and "no Modality tag (read as OT)" in reason and "modality OT" not in reason


def test_a_ct_or_mr_image_without_pixel_spacing_says_1_mm_was_assumed(tmp_path: Path) -> None:
    """PixelSpacing is required in CT and MR images: a slice without it (stripped, or a bad export) is read
    with 1 mm pixels and a warning; a secondary capture, which need not have one, gets none."""
    for name, modality in (("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")):
        ds = pydicom.dcmread(pydicom_testdata(name))
        del ds.PixelSpacing
        ds.save_as(tmp_path / f"{modality}.dcm")
        layout = read_dicom_header(tmp_path / f"{modality}.dcm")
        assert layout.spacing[1:] == (1.0, 1.0)
        want = f"no PixelSpacing in a {modality} image: 1 mm pixels assumed (distances in mm are not real)"
        assert want in layout.warnings
    ds.SOPClassUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.7", "OT"  # Secondary Capture
    ds.save_as(tmp_path / "sc.dcm")
    assert not any("PixelSpacing" in w for w in read_dicom_header(tmp_path / "sc.dcm").warnings)
