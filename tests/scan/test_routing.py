"""The members of a CT study that are not axial images (localizer, dose screen, MIP, coronal reformat) are
reported as not assessed, not scored into false alarms (session 26's PACS-study audit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

from medforensics.io.dicom_write import write_dicom_series
from medforensics.io.volume import Volume
from medforensics.scan.detector import Detector
from medforensics.scan.pipeline import scan_paths, scan_volume
from medforensics.scan.routing import (
    AXIAL_STACK,
    PROJECTION_TIES,
    dicom_member_reason,
    neighbour_ties,
    pixel_checked_claim,
    projection_evidence,
    thin_projection_claim,
)
from tests.scan._helpers import ct_crop


def _retag(folder: Path, **tags: object) -> None:
    """Set ``tags`` in every file of a written series (a new series UID too; None: remove the tag)."""
    uid = generate_uid()
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = uid
        for k, v in tags.items():
            if v is None:
                delattr(ds, k)
            else:
                setattr(ds, k, v)
        ds.save_as(f)


def _one_image(template: Path, out: Path, image: np.ndarray, **tags: object) -> None:
    """A single 16-bit image (HU + 1024) from the header of ``template`` with ``tags`` set."""
    ds = pydicom.dcmread(template)
    ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.Rows, ds.Columns = image.shape
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.clip(image + 1024, 0, 65535).astype(np.uint16).tobytes()
    out.mkdir(parents=True)
    ds.save_as(out / "IM000001.dcm", enforce_file_format=True)


def _dose_screen(template: Path, out: Path) -> None:
    """A one-page dose report as a CT scanner writes it: white text burned in on black, Secondary Capture."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (512, 512), 0)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(
        ["Dose Report", "Series Type  CTDIvol DLP", "2  Helical  8.20  325.0", "Total 652"]
    ):
        draw.text((12, 20 + 18 * i), line, fill=255)
    ds = pydicom.dcmread(template, stop_before_pixels=True)
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "RescaleIntercept"):
        delattr(ds, kw)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImageType, ds.ConversionType, ds.BurnedInAnnotation = (
        ["DERIVED", "SECONDARY", "SCREEN SAVE"],
        "WSD",
        "YES",
    )
    ds.Rows = ds.Columns = 512
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.asarray(canvas).tobytes()
    ds["PixelData"].VR = "OB"
    out.mkdir(parents=True)
    ds.save_as(out / "IM000001.dcm", enforce_file_format=True)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CT study as PACS exports it: the axial series (a real CT crop), a one-image localizer (the mean
    attenuation along the AP axis), a one-page dose screen, an axial MIP slab series and a coronal MPR."""
    root = tmp_path_factory.mktemp("study")
    vol = ct_crop()
    files = write_dicom_series(vol, root / "axial")
    arr = np.asarray(vol.array)
    topogram = np.repeat(arr.mean(axis=1)[::-1], 4, axis=0)  # rows head to feet, square-ish pixels
    _one_image(
        files[-1],
        root / "localizer",
        topogram,
        ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"],
        ImageOrientationPatient=[1, 0, 0, 0, 0, -1],
    )
    _dose_screen(files[0], root / "dose")
    mip = np.stack([arr[max(0, k - 2) : k + 3].max(axis=0) for k in range(arr.shape[0])])
    write_dicom_series(vol.with_array(mip, spacing=vol.spacing), root / "mip")
    # a real MIP series records its slab: 5 slices here
    _retag(
        root / "mip", ImageType=["DERIVED", "SECONDARY", "AXIAL", "MIP"], SliceThickness=5 * vol.spacing[0]
    )
    coronal = np.ascontiguousarray(arr.transpose(1, 0, 2))
    direction = vol.direction[:, [1, 0, 2]]
    sp = vol.spacing
    write_dicom_series(
        Volume(coronal, spacing=(sp[1], sp[0], sp[2]), origin=vol.origin, direction=direction, modality="CT"),
        root / "coronal",
    )
    _retag(root / "coronal", ImageType=["DERIVED", "SECONDARY", "MPR"])
    return root


def test_study_members_that_are_not_axial_images_are_not_assessed(study: Path, detector: Detector) -> None:
    """Before session 26 the one-page dose screen was scored by the 2-D detector (0.00203 against its
    0.00207 threshold: a hair from 'synthetic'), the localizer too, the MIP and the coronal MPR by the CT
    detector, and a two-image localizer (AP + lateral) failed with 'image orientation differs'. Now each
    gets a reason, is flagged not_assessed, and the HTML lists it apart from the series needing attention."""
    from medforensics.report.html import render_html

    report, _ = scan_paths([study], detector=detector, detector2d=Detector.default("detector2d"))
    by_name = {Path(s.path).parts[len(study.parts)]: s for s in report.series}
    assert set(by_name) == {"axial", "localizer", "dose", "mip", "coronal"}
    assert by_name["axial"].verdict != "error" and not by_name["axial"].not_assessed
    want = {
        "localizer": "CT localizer (scout/topogram, ImageType LOCALIZER)",
        "dose": "secondary capture (screen capture such as a dose report, burned-in annotation)",
        "mip": "maximum intensity projection (ImageType MIP)",
        "coronal": "coronal reformat (ImageType MPR)",
    }
    for name, start in want.items():
        s = by_name[name]
        assert s.not_assessed and s.verdict == "error" and s.score is None and not s.findings, name
        assert s.error is not None and s.error.startswith(start) and "not assessed" in s.error, s.error
        assert s.to_dict()["not_assessed"] is True
    assert report.exit_status == 0
    page = render_html(report, {})
    attention = page[page.index("Needs attention") :].split("</p>")[0]
    assert "error" not in attention and "localizer" not in attention and "dose" not in attention
    assert "Not assessed, no alarm (4)" in page and "4 not assessed" in page


def test_member_rules_leave_axial_series_and_the_writers_own_exports_alone() -> None:
    """An axial CT exported as DERIVED\\SECONDARY\\AXIAL (what medforensics and many anonymisers write), an
    MR the writer stores as a Secondary Capture (ConversionType WSD, modality MR) and a coronal series without
    a reformat ImageType are scored as before; only the marked members are refused."""
    ds = pydicom.Dataset()
    ds.Modality, ds.SOPClassUID = "CT", "1.2.840.10008.5.1.4.1.1.2"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    assert dicom_member_reason(ds) is None
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal, but no MPR/REFORMATTED in ImageType
    assert dicom_member_reason(ds) is None
    ds.ImageType = ["DERIVED", "SECONDARY", "REFORMATTED"]
    assert str(dicom_member_reason(ds)).startswith("coronal reformat (ImageType REFORMATTED)")
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]  # an axial reformat: judged by its spacing as any CT
    assert dicom_member_reason(ds) is None
    mr = pydicom.Dataset()
    mr.Modality, mr.SOPClassUID, mr.ConversionType = "MR", str(SecondaryCaptureImageStorage), "WSD"
    mr.ImageType = ["DERIVED", "SECONDARY"]
    assert dicom_member_reason(mr) is None
    mr.ImageType = ["DERIVED", "SECONDARY", "MINIP"]
    assert str(dicom_member_reason(mr)).startswith("minimum intensity projection")


def test_thick_series_is_not_assessed_and_a_label_map_is_an_error(detector: Detector) -> None:
    """The >3 mm reason marks the series not assessed (no alarm); a real error (a label map) does not."""
    vol = ct_crop(nz=12)
    thick = scan_volume(vol.with_array(np.asarray(vol.array), spacing=(5.0, *vol.spacing[1:])), detector)
    assert thick.verdict == "error" and thick.not_assessed and "not assessed" in str(thick.error)
    labels = scan_volume(vol.with_array((np.asarray(vol.array) > 0).astype(np.float32)), detector)
    assert labels.verdict == "error" and not labels.not_assessed


@pytest.mark.parametrize(
    "tags",
    [
        {"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]},
        {"SOPClassUID": str(SecondaryCaptureImageStorage), "BurnedInAnnotation": "YES"},
        {"ImageType": ["DERIVED", "SECONDARY", "AXIAL", "MIP"]},  # as thin as the slices written
    ],
    ids=["localizer", "screen-capture", "thin-mip"],
)
def test_an_axial_volume_tagged_localizer_screen_capture_or_thin_mip_is_scanned_and_the_claim_reported(
    tmp_path: Path, detector: Detector, tags: dict[str, object]
) -> None:
    """Header tags are the attacker's: a tampered axial series retagged LOCALIZER (or as a burned-in screen
    capture, or MIP with its slices' own thickness: session 30) was 'not assessed' and listed as no alarm.
    A stack of >= 8 axial images is a CT volume: it is scanned, and the claim is a medium `member_claim`
    metadata finding. A real one-image localizer is not."""
    write_dicom_series(ct_crop(nz=12), tmp_path / "axial")
    _retag(tmp_path / "axial", **tags)
    report, _ = scan_paths([tmp_path / "axial"], detector=detector)
    (series,) = report.series
    assert not series.not_assessed and series.verdict in ("authentic", "tampered"), series.error
    (claim,) = [f for f in series.findings if f.check == "member_claim"]
    assert (
        claim.type == "metadata"
        and claim.score == 0.7
        and "stack of 12 axial images" in str(claim.description)
    )
    header = pydicom.dcmread(next((tmp_path / "axial").iterdir()), stop_before_pixels=True)
    assert dicom_member_reason(header, images=2) is not None  # two such images: still a localizer / screen


@pytest.mark.parametrize(
    ("thickness", "header"),
    [(10.0, "pixels"), (None, "pixels"), ("", "pixels"), (2.5, "refused"), (3.0, "refused")],
)
def test_a_projection_claim_is_refused_for_a_thin_slab_and_judged_on_pixels_otherwise(
    thickness: object, header: str
) -> None:
    """A MIP slab series records its slab in SliceThickness (5-15 mm); one as thin as the CT detector's
    slices (<= 3 mm) is scanned (session 30). A thicker or missing thickness no longer settles it from the
    header: the series is loaded and its pixels judged (:func:`projection_reason`). A few images, an MR
    MIP, or a rendering that is not a max / min projection, are still believed from the header."""
    ds = pydicom.Dataset()
    ds.Modality, ds.ImageType = "CT", ["DERIVED", "SECONDARY", "AXIAL", "MIP"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    if thickness is not None:
        ds.SliceThickness = thickness
    assert dicom_member_reason(ds, images=40) is None
    assert str(dicom_member_reason(ds, images=AXIAL_STACK - 1)).startswith(
        "maximum intensity projection (ImageType MIP)"
    )  # too few images for a volume
    if header == "pixels":
        assert thin_projection_claim(ds) is None
        assert pixel_checked_claim(ds, 40) == "maximum intensity projection (ImageType MIP)" + (
            " 10 mm thick" if thickness == 10.0 else ""
        )
        ds.Modality = "MR"  # an MR angiogram's MIP series: HU ties mean nothing, believed as before
        assert str(dicom_member_reason(ds, images=40)).startswith("maximum intensity projection")
        ds.Modality, ds.ImageType = "CT", ["DERIVED", "SECONDARY", "AXIAL", "VOLUME RENDERING"]
        assert str(dicom_member_reason(ds, images=40)).startswith("volume rendering")
    else:
        assert pixel_checked_claim(ds, 40) is None
        assert (
            thin_projection_claim(ds)
            == f"maximum intensity projection (ImageType MIP) {thickness:g} mm thick"
        )


@pytest.mark.parametrize("tag", ["MIP", "MINIP"])
@pytest.mark.parametrize("thickness", [10.0, None])
def test_a_thick_projection_claim_is_judged_on_its_pixels(
    tmp_path: Path, detector: Detector, tag: str, thickness: float | None
) -> None:
    """A max / min projection copies one voxel of its slab into each pixel, so neighbouring images of
    overlapping slabs share many values exactly (real CT: 25-69 %), where reconstructed slices rarely do
    (1.2-1.6 %). A real CT crop's sliding 4-slice MIP / MinIP tagged so is not assessed; the crop itself,
    retagged the same way (an attacker hiding a tampered series), is scanned with a member_claim finding.
    Before, both were 'not assessed' from the header alone."""
    vol = ct_crop(nz=12)
    arr = np.asarray(vol.array)
    project = np.max if tag == "MIP" else np.min
    slab = np.stack([project(arr[max(0, k - 1) : k + 3], axis=0) for k in range(len(arr))])
    tags = {"ImageType": ["DERIVED", "SECONDARY", "AXIAL", tag], "SliceThickness": thickness}
    for name, pixels in (("slab", slab), ("retagged", arr)):
        write_dicom_series(vol.with_array(pixels, spacing=vol.spacing), tmp_path / name)
        _retag(tmp_path / name, **tags)
    report, _ = scan_paths([tmp_path / "slab", tmp_path / "retagged"], detector=detector)
    by_name = {Path(r.path).name: r for r in report.series}
    real, fake = by_name["slab"], by_name["retagged"]
    assert real.not_assessed and real.verdict == "error" and not real.findings, real.error
    assert "of neighbouring pixels equal" in str(real.error) and "not assessed" in str(real.error)
    assert not fake.not_assessed and fake.verdict in ("authentic", "tampered"), fake.error
    (claim,) = [f for f in fake.findings if f.check == "member_claim"]
    assert claim.score == 0.7 and "of its neighbouring images' pixels are equal" in str(claim.description)
    twice = Volume(np.repeat(arr, 2, axis=0), spacing=(vol.spacing[0] / 2, *vol.spacing[1:]), modality="CT")
    ties = [neighbour_ties(v) for v in (vol.with_array(slab), vol, twice)]
    assert all(t is not None for t in ties)
    # a duplicated series (every other pair identical) is no projection either
    assert max(ties[1:]) < PROJECTION_TIES <= ties[0], ties
    # values rounded to 10 HU tie by themselves: the claim still fails, on the value grid
    rounded = projection_evidence(vol.with_array(np.round(arr / 10) * 10))
    assert "whole HU values" in str(rounded[2]) and projection_evidence(vol.with_array(slab))[2] is None


def test_neighbour_ties_needs_body_pixels() -> None:
    """Air (clipped to one value) and metal are not counted: an image of nothing else cannot be judged."""
    air = Volume(np.full((10, 64, 64), -1024.0, np.float32), modality="CT")
    assert neighbour_ties(air) is None
    body = Volume(np.full((10, 128, 128), 40.0, np.float32), modality="CT")
    assert neighbour_ties(body) == 1.0
