"""LIDC-IDRI reader XML: parsing, grouping readers into nodules, masks; real slabs when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medforensics.errors import InputError
from medforensics.io.datasets.lidc import (
    find_lidc_xml,
    group_nodules,
    load_lidc_annotations,
    nodule_mask,
    parse_lidc_xml,
)
from medforensics.io.volume import Volume

NS = "http://www.nih.gov"
SLICES = 6
AXIAL = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # slice normal +z, rows +y, columns +x


def _circle(row: float, col: float, radius: float, n: int = 40) -> list[tuple[int, int]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [(round(row + radius * np.sin(a)), round(col + radius * np.cos(a))) for a in t]


def _roi(k: int | None, points: list[tuple[int, int]], inclusion: bool = True) -> str:
    sop, z = (f"1.2.3.{k}", -100.0 + 2.0 * k) if k is not None else ("9.9.9", -300.0)
    edges = "".join(f"<edgeMap><xCoord>{c}</xCoord><yCoord>{r}</yCoord></edgeMap>" for r, c in points)
    return (
        f"<roi><imageZposition>{z:.6f} </imageZposition><imageSOP_UID>{sop}</imageSOP_UID>"
        f"<inclusion>{'TRUE' if inclusion else 'FALSE'}</inclusion>{edges}</roi>"
    )


def _nodule(nid: str, rois: list[str], malignancy: int | None = None, texture: int = 5) -> str:
    chars = ""
    if malignancy is not None:
        chars = (
            "<characteristics><subtlety>4</subtlety><internalStructure>1</internalStructure>"
            f"<calcification>6</calcification><sphericity>3</sphericity><margin>4</margin>"
            f"<lobulation>2</lobulation><spiculation>1</spiculation><texture>{texture}</texture>"
            f"<malignancy>{malignancy}</malignancy></characteristics>"
        )
    return f"<unblindedReadNodule><noduleID>{nid}</noduleID>{chars}{''.join(rois)}</unblindedReadNodule>"


def _write_xml(path: Path) -> Path:
    big_a = [_roi(k, _circle(30, 34, 8)) for k in (2, 3, 4)] + [_roi(None, _circle(30, 34, 8))]
    big_b = [_roi(k, _circle(31, 35, 8)) for k in (2, 3)] + [_roi(3, _circle(31, 35, 2), inclusion=False)]
    sessions = [
        _nodule("A", big_a, malignancy=4)
        + _nodule("outside", [_roi(None, _circle(40, 40, 5))], malignancy=3),
        _nodule("B", big_b, malignancy=5, texture=3) + _nodule("s1", [_roi(1, [(10, 10)])]),
        _nodule("s2", [_roi(1, [(11, 10)])])
        + _nodule("s3", [_roi(1, [(12, 11)])])
        + "<nonNodule><nonNoduleID>n1</nonNoduleID><imageZposition>-98.0</imageZposition>"
        "<imageSOP_UID>1.2.3.1</imageSOP_UID><locus><xCoord>50</xCoord><yCoord>20</yCoord></locus></nonNodule>",
    ]
    body = "".join(
        f"<readingSession><annotationVersion>3.12</annotationVersion>{s}</readingSession>" for s in sessions
    )
    header = "<ResponseHeader><SeriesInstanceUid>1.2.3</SeriesInstanceUid></ResponseHeader>"
    path.write_text(f'<?xml version="1.0"?><LidcReadMessage xmlns="{NS}">{header}{body}</LidcReadMessage>')
    return path


def _volume(with_uids: bool = True) -> Volume:
    meta = {"series_uid": "1.2.3"}
    if with_uids:
        meta["sop_instance_uids"] = [f"1.2.3.{k}" for k in range(SLICES)]
    return Volume(
        np.full((SLICES, 64, 64), -800.0),
        spacing=(2.0, 0.5, 0.5),
        origin=(-16.0, -16.0, -100.0),
        direction=AXIAL,
        metadata=meta,
    )


def test_parse(tmp_path: Path) -> None:
    reads = parse_lidc_xml(_write_xml(tmp_path / "r.xml"))
    assert reads.n_readers == 3 and reads.series_uid == "1.2.3"
    assert [n.nodule_id for n in reads.nodules] == ["A", "outside", "B", "s1", "s2", "s3"]
    a = reads.nodules[0]
    assert a.reader == 0 and a.malignancy == 4 and not a.is_small and len(a.rois) == 4
    assert a.characteristics["texture"] == 5 and a.rois[0].z_position == pytest.approx(-96.0)
    assert tuple(a.rois[0].points[0]) == (30.0, 42.0)  # (row, col) from yCoord, xCoord
    assert reads.nodules[3].is_small and reads.nodules[3].malignancy is None
    assert not reads.nodules[2].rois[-1].inclusion
    assert len(reads.non_nodules) == 1 and reads.non_nodules[0].point == (20.0, 50.0)
    assert find_lidc_xml(tmp_path) == [tmp_path / "r.xml"]


@pytest.mark.parametrize("with_uids", [True, False])
def test_grouping(tmp_path: Path, with_uids: bool) -> None:
    vol = _volume(with_uids)
    nodules = load_lidc_annotations(_write_xml(tmp_path / "r.xml"), vol)
    assert len(nodules) == 3
    big = nodules[0]
    assert big.extra["placed_by"] == ("sop" if with_uids else "z")
    assert big.extra["n_readers"] == 2 and sorted(big.extra["readers"]) == [0, 1]
    assert big.malignancy == pytest.approx(4.5)
    assert big.extra["characteristics"]["texture"] == pytest.approx(4.0)
    assert big.extra["rois_outside_volume"] == 1
    assert sorted(big.contours) == [2, 3, 4] and len(big.contours[2]) == 2
    assert big.extra["reader_diameters_mm"] == pytest.approx([8.0, 8.0], abs=0.6)  # 16-pixel circles, 0.5 mm
    assert big.diameter_mm is not None and 8.3 < big.diameter_mm < 9.5  # union of two offset circles
    assert big.diameter_voxels is not None and big.diameter_voxels[0] == 3
    np.testing.assert_allclose(big.center_voxel, (2.6, 30.5, 34.5), atol=0.6)
    np.testing.assert_allclose(big.center_mm, vol.index_to_patient(big.center_voxel))
    smalls = nodules[1:]
    assert all(n.diameter_mm is None and n.extra["small"] for n in smalls)
    assert sorted(n.extra["n_readers"] for n in smalls) == [1, 2]  # reader 2's two marks stay apart
    for n in smalls:
        readers = n.extra["readers"]
        assert len(readers) == len(set(readers))


def test_mask_consensus_and_holes(tmp_path: Path) -> None:
    vol = _volume()
    big = load_lidc_annotations(_write_xml(tmp_path / "r.xml"), vol)[0]
    any_reader, both = nodule_mask(big, vol, 1), nodule_mask(big, vol, 2)
    assert any_reader.shape == vol.shape and both.sum() > 0
    assert not (both & ~any_reader).any() and any_reader.sum() > both.sum()
    assert sorted(np.unique(np.nonzero(any_reader)[0])) == [2, 3, 4]
    assert any_reader[3, 31, 35] and not both[3, 31, 35]  # reader 1's hole
    assert both[2, 31, 35] and not any_reader[2, 5, 5]
    area = any_reader[4].sum() * 0.25  # reader 0 only: a circle of radius ~4 mm
    assert 40 < area < 65


def test_outside_and_bad_xml(tmp_path: Path) -> None:
    far = Volume(np.zeros((2, 64, 64)), origin=(0.0, 0.0, 500.0), direction=AXIAL)
    assert load_lidc_annotations(_write_xml(tmp_path / "r.xml"), far) == []
    broken = tmp_path / "broken.xml"
    broken.write_text("<LidcReadMessage><readingSession>")
    other = tmp_path / "other.xml"
    other.write_text("<note>hi</note>")
    bad_coord = tmp_path / "bad.xml"
    bad_coord.write_text(
        _write_xml(tmp_path / "x.xml").read_text().replace("<xCoord>10</xCoord>", "<xCoord>ten</xCoord>")
    )
    for path in (broken, other, bad_coord, tmp_path / "absent.xml"):
        with pytest.raises(InputError) as err:
            parse_lidc_xml(path)
        assert str(path) in str(err.value)


def test_group_nodules_direct_call_is_sorted_largest_first(tmp_path: Path) -> None:
    reads = parse_lidc_xml(_write_xml(tmp_path / "r.xml"))
    nodules = group_nodules(reads.nodules, _volume(), distance_mm=0.1)
    big = [n for n in nodules if not n.extra["small"]]
    assert len(big) == 2  # a tiny distance keeps the two readers' marks apart
    assert [n.nodule_id for n in nodules] == [str(i) for i in range(1, len(nodules) + 1)]


# ---------------------------------------------------------------------- real data
LIDC_CASES = ["LIDC-IDRI-0001", "LIDC-IDRI-0002", "LIDC-IDRI-0003"]


@pytest.mark.shared
@pytest.mark.parametrize("case", LIDC_CASES)
def test_real_slab_nodule_lands_on_the_nodule(shared_data: Path, case: str) -> None:
    from medforensics.io.dicom import read_dicom_series

    xml = next((shared_data / "lidc-idri-slabs" / case).glob("*/*/*.xml"))
    vol = read_dicom_series(xml.parent)
    nodules = load_lidc_annotations(xml, vol)
    top = max((n for n in nodules if n.malignancy is not None), key=lambda n: n.malignancy or 0)
    assert top.malignancy is not None and top.malignancy >= 4
    assert vol.contains_index(top.center_voxel)
    assert top.diameter_mm is not None and 5.0 < top.diameter_mm < 40.0
    assert top.extra["placed_by"] == "sop" and top.extra["n_readers"] >= 2
    # the mm centre is the DICOM position of the centre voxel
    k = round(top.center_voxel[0])
    ipp = np.array(vol.datasets[k].ImagePositionPatient, dtype=float)
    r, c = top.center_voxel[1], top.center_voxel[2]
    expected = ipp + c * vol.spacing[2] * vol.direction[:, 2] + r * vol.spacing[1] * vol.direction[:, 1]
    expected[2] += (top.center_voxel[0] - k) * vol.spacing[0] * vol.direction[2, 0]
    np.testing.assert_allclose(top.center_mm, expected, atol=0.05)
    # geometry check: dense tissue at the centre, air-like lung around the outline
    mask = nodule_mask(top, vol, consensus=(top.extra["n_readers"] + 1) // 2)
    z, y, x = (round(v) for v in top.center_voxel)
    centre_hu = float(vol.array[z, y - 1 : y + 2, x - 1 : x + 2].mean())
    ring = ndimage.binary_dilation(mask, np.ones((1, 3, 3), bool), iterations=8)
    ring &= ~ndimage.binary_dilation(mask, np.ones((1, 3, 3), bool), iterations=3)
    lung = vol.array[ring]
    assert mask[z, y, x]
    assert np.percentile(lung, 10) < -800  # air-like lung around
    assert float(vol.array[mask].mean()) > float(np.median(lung)) + 100
    if top.extra["characteristics"].get("texture", 5) >= 4:  # solid nodule (2 is ground glass)
        assert centre_hu > -500
