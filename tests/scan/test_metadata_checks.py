from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom

from medforensics.io.reader import read_volume
from medforensics.scan.metadata_checks import MEDIUM, STRONG, WEAK, metadata_findings


def _copy(series: Path, dst: Path) -> list[Path]:
    shutil.copytree(series, dst)
    return sorted(dst.glob("*.dcm"))


def _edit(path: Path, **tags: object) -> None:
    ds = pydicom.dcmread(path)
    for k, v in tags.items():
        setattr(ds, k, v)
    if "SOPInstanceUID" in tags:
        ds.file_meta.MediaStorageSOPInstanceUID = tags["SOPInstanceUID"]
    ds.save_as(path)


def _slices(f) -> range:
    return range(f.bbox_voxel[0], f.bbox_voxel[3])


def test_clean_series_has_no_strong_finding(ct_series: Path) -> None:
    found = metadata_findings(read_volume(ct_series))
    assert not [f for f in found if f.score >= STRONG], [f.description for f in found]


def test_one_slice_with_another_kvp(ct_series: Path, tmp_path: Path) -> None:
    files = _copy(ct_series, tmp_path / "s")
    for f in files:
        _edit(f, KVP="120")
    _edit(files[7], KVP="100")
    vol = read_volume(tmp_path / "s")
    k = vol.metadata["sop_instance_uids"].index(str(pydicom.dcmread(files[7]).SOPInstanceUID))
    hits = [f for f in metadata_findings(vol) if f.check == "tag:KVP"]
    assert len(hits) == 1 and list(_slices(hits[0])) == [k]
    assert "100" in hits[0].description and hits[0].center_voxel[0] == k


def test_rescale_intercept_lie_is_caught(ct_series: Path, tmp_path: Path) -> None:
    files = _copy(ct_series, tmp_path / "s")
    _edit(files[3], RescaleIntercept="0")  # same stored pixels, but air now reads about +24 HU
    vol = read_volume(tmp_path / "s")
    k = vol.metadata["sop_instance_uids"].index(str(pydicom.dcmread(files[3]).SOPInstanceUID))
    hits = [f for f in metadata_findings(vol) if f.check == "slice_offset"]
    assert len(hits) == 1 and list(_slices(hits[0])) == [k] and hits[0].score >= STRONG


def test_duplicate_sop_instance_uid(ct_series: Path, tmp_path: Path) -> None:
    files = _copy(ct_series, tmp_path / "s")
    uid = str(pydicom.dcmread(files[1]).SOPInstanceUID)
    _edit(files[2], SOPInstanceUID=uid)
    hits = [f for f in metadata_findings(read_volume(tmp_path / "s")) if f.check == "duplicate_sop_uid"]
    assert len(hits) == 1 and len(_slices(hits[0])) == 2 and "duplicate SOPInstanceUID" in hits[0].description


def test_missing_slice_gap(ct_series: Path, tmp_path: Path) -> None:
    files = _copy(ct_series, tmp_path / "s")
    files[10].unlink()
    vol = read_volume(tmp_path / "s")
    hits = [f for f in metadata_findings(vol) if f.check == "slice_gap"]
    assert len(hits) == 1
    k = hits[0].center_voxel[0]
    pos = vol.metadata["slice_positions"]
    assert abs(abs(pos[k + 1] - pos[k]) - 2 * vol.spacing[0]) < 1e-3


def test_pixel_stats_completed_after_a_partial_pass_equal_a_full_pass() -> None:
    from medforensics.scan.metadata_checks import PixelStats

    arr = np.random.default_rng(0).normal(-500, 300, (11, 40, 36)).astype(np.float32)
    full_sub, full_lo_hi = PixelStats(11).complete(arr)
    part = PixelStats(11)
    part.add(2, arr[2:7])  # what a grid pass saw (it drops a remainder and may start later)
    read: list[int] = []

    class Counting:
        shape = arr.shape

        def __getitem__(self, key: slice) -> np.ndarray:
            read.extend(range(*key.indices(11)))
            return arr[key]

    sub, lo_hi = part.complete(Counting())
    np.testing.assert_array_equal(sub, full_sub)
    np.testing.assert_array_equal(lo_hi, full_lo_hi)
    assert sorted(read) == [0, 1, 7, 8, 9, 10]  # only the slices the pass did not see
    assert sub.shape == (11, 10, 9) and (lo_hi[:, 0] == arr.min(axis=(1, 2))).all()


def test_noise_fresh_in_every_touching_slice_is_reported(ct_series: Path, tmp_path: Path) -> None:
    from medforensics.scan.metadata_checks import MEDIUM, WEAK, noise_finding

    vol = read_volume(ct_series)
    assert noise_finding(vol, None, 0.15) is None and noise_finding(vol, 0.3, 0.15) is None  # scanner noise
    files = _copy(ct_series, tmp_path / "s")
    for f in files:
        _edit(f, SliceThickness=f"{vol.spacing[0]:g}")  # slices that touch: scanners correlate their noise
    touching = read_volume(tmp_path / "s")
    found = noise_finding(touching, 0.03, 0.15)
    assert found is not None and found.type == "metadata" and found.score == MEDIUM
    assert found.check == "added_noise" and found.to_dict()["check"] == "added_noise"
    assert "median correlation 0.03" in found.description and "added to the whole series" in found.description
    assert found.center_voxel is None and "\n" not in found.description
    for f in files:
        _edit(f, SliceThickness=f"{vol.spacing[0] / 2:g}")  # gaps between slices: independent noise anyway
    assert noise_finding(read_volume(tmp_path / "s"), 0.03, 0.15) is None
    bare = vol.with_array(np.asarray(vol.array), spacing=vol.spacing, datasets=[])  # NIfTI-like: no tags
    weak = noise_finding(bare, 0.03, 0.15)
    assert weak is not None and weak.score == WEAK


def _recoded(series: Path, dst: Path, uid: str | None, n: int = 4, **tags: object) -> Path:
    """The first ``n`` slices of ``series``, compressed to ``uid`` (JPEG 2000 at ratio 10 when lossy)."""
    import warnings

    dst.mkdir()
    for f in sorted(series.glob("*.dcm"))[:n]:
        ds = pydicom.dcmread(f)
        if uid is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kw = {"j2k_cr": [10]} if uid == pydicom.uid.JPEG2000 else {}
                ds.compress(uid, generate_instance_uid=False, **kw)
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.save_as(dst / f.name, enforce_file_format=True)
    return dst


def _lossy(folder: Path) -> list:
    return [f for f in metadata_findings(read_volume(folder)) if f.check == "lossy_compression"]


def test_lossy_compression_is_reported(ct_series: Path, tmp_path: Path) -> None:
    # a lossy-compressed series was scanned without a word: the detector was trained on lossless CT, and
    # JPEG 2000 at 20:1 made the demo's injection score as authentic (README)
    j2k = pydicom.uid.JPEG2000
    undeclared = _lossy(_recoded(ct_series, tmp_path / "j2k", j2k))
    assert [f.score for f in undeclared] == [MEDIUM]
    assert "irreversible" in undeclared[0].description and "about 10:1" in undeclared[0].description
    assert "does not declare" in undeclared[0].description
    declared = _lossy(
        _recoded(
            ct_series,
            tmp_path / "declared",
            j2k,
            LossyImageCompression="01",
            LossyImageCompressionRatio=["9.5", "2"],
            LossyImageCompressionMethod=["ISO_15444_1", "ISO_10918_1"],
        )
    )
    assert [f.score for f in declared] == [WEAK]
    assert "ratio 9.5:1 then 2:1" in declared[0].description
    # decompressed after a lossy step: the header still says so, and so does the scan
    earlier = _lossy(
        _recoded(
            ct_series,
            tmp_path / "earlier",
            None,
            LossyImageCompression="01",
            LossyImageCompressionMethod="ISO_10918_1",
        )
    )
    assert [f.score for f in earlier] == [WEAK] and "ISO_10918_1" in earlier[0].description
    assert _lossy(_recoded(ct_series, tmp_path / "lossless", pydicom.uid.JPEGLSLossless)) == []
    assert _lossy(_recoded(ct_series, tmp_path / "raw", None)) == []


def test_pixels_of_an_unmarked_projection_are_reported(tmp_path: Path) -> None:
    """A sliding 4-slice maximum of a real CT crop that nothing marks as a MIP: neighbouring images share
    about half their pixel values, where the crop itself shares 1-2 %. Scored as before (not assessing it
    would let a sliding maximum over a tampered series hide it), with a projection_pixels finding: medium
    for DICOM (its ImageType should say so), weak without a header. The crop itself gets none."""
    from medforensics.io.dicom_write import write_dicom_series
    from tests.scan._helpers import ct_crop

    vol = ct_crop(nz=12)
    arr = np.asarray(vol.array)
    mip = vol.with_array(np.stack([arr[max(0, k - 1) : k + 3].max(axis=0) for k in range(len(arr))]))

    def found(v: object) -> list:
        return [f for f in metadata_findings(v) if f.check == "projection_pixels"]  # type: ignore[arg-type]

    assert found(vol) == []
    (weak,) = found(mip)
    assert weak.score == WEAK and "nothing in the file says so" in str(weak.description)
    write_dicom_series(mip, tmp_path / "mip")
    (medium,) = found(read_volume(tmp_path / "mip"))
    assert medium.score == MEDIUM and "its ImageType does not say so" in str(medium.description)
    assert medium.type == "metadata" and 40 <= int(str(medium.description).split("%")[0]) <= 60
