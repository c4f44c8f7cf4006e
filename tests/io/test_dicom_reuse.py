"""Loading a discovered DICOM series reuses the headers discovery parsed (each file is parsed once)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from medforensics.errors import InputError
from medforensics.io.dicom import read_dicom_series
from medforensics.io.reader import SeriesRef, discover, load
from tests.io._dicom_series import ct_slice, write_ct_series

ZS = [0.0, 5.0, 10.0, 15.0]


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """``pydicom.dcmread`` calls by file name (from the fixture on; ``clear()`` it to start afresh)."""
    calls: Counter[str] = Counter()
    real = pydicom.dcmread

    def counting(fp: Any, *args: Any, **kwargs: Any) -> Any:
        calls[Path(fp).name] += 1
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    return calls


def _discovered(folder: Path) -> SeriesRef:
    found = discover([folder])
    assert len(found.series) == 1 and not found.skipped
    return found.series[0]


def test_discover_then_load_parses_each_file_once(tmp_path: Path, parses: Counter[str]) -> None:
    files = write_ct_series(tmp_path / "ser", ZS)
    parses.clear()
    ref = _discovered(tmp_path / "ser")
    vol = load(ref)
    assert parses == Counter({f.name: 1 for f in files})
    assert ref.headers is None  # used up by the load
    direct = read_dicom_series(files)
    np.testing.assert_array_equal(vol.array, direct.array)
    assert (vol.spacing, vol.origin, vol.modality) == (direct.spacing, direct.origin, direct.modality)
    np.testing.assert_array_equal(vol.direction, direct.direction)
    assert vol.metadata == direct.metadata
    assert [ds.SOPInstanceUID for ds in vol.datasets] == [ds.SOPInstanceUID for ds in direct.datasets]
    assert all("PixelData" not in ds for ds in vol.datasets)


def test_streamed_load_parses_headers_once(tmp_path: Path, parses: Counter[str]) -> None:
    files = write_ct_series(tmp_path / "ser", ZS)
    parses.clear()
    vol = load(_discovered(tmp_path / "ser"), stream_above=0)
    assert parses == Counter({f.name: 1 for f in files})  # pixels not read yet
    np.testing.assert_array_equal(np.asarray(vol.array[:]), read_dicom_series(files).array)


def test_a_second_load_reads_the_files_again(tmp_path: Path, parses: Counter[str]) -> None:
    files = write_ct_series(tmp_path / "ser", ZS)
    parses.clear()
    ref = _discovered(tmp_path / "ser")
    first, second = load(ref), load(ref)
    np.testing.assert_array_equal(first.array, second.array)
    assert parses == Counter({f.name: 2 for f in files})


def test_a_file_removed_after_discovery_is_an_error_naming_it(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ser", ZS)
    ref = _discovered(tmp_path / "ser")
    files[2].unlink()
    with pytest.raises(InputError, match="does not exist") as err:
        load(ref)
    assert err.value.path is not None and err.value.path.endswith(files[2].name)


def test_a_file_truncated_after_discovery_is_the_same_error_as_without_discovery(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ser", ZS)
    ref = _discovered(tmp_path / "ser")
    files[1].write_bytes(files[1].read_bytes()[:-100])
    with pytest.raises(InputError, match="truncated") as err:
        load(ref)
    with pytest.raises(InputError) as direct:
        read_dicom_series(files)
    assert str(err.value) == str(direct.value) and "\n" not in str(err.value)
    assert err.value.path is not None and err.value.path.endswith(files[1].name)


def test_a_file_truncated_in_its_pixels_before_discovery_fails_the_load_not_discovery(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ser", ZS)
    files[3].write_bytes(files[3].read_bytes()[:-100])
    ref = _discovered(tmp_path / "ser")  # headers alone: still a member of the series, as before
    assert len(ref.files) == 4
    with pytest.raises(InputError, match="truncated DICOM file") as err:
        load(ref)
    with pytest.raises(InputError) as direct:
        read_dicom_series(files)
    assert str(err.value) == str(direct.value)


def test_a_file_rewritten_after_discovery_is_read_anew(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ser", ZS)
    ref = _discovered(tmp_path / "ser")
    before = files[0].stat()
    ds = pydicom.dcmread(files[0])
    ds.ImagePositionPatient = [*list(ds.ImagePositionPatient)[:2], 20.0]  # same size, new position
    ds.save_as(files[0], enforce_file_format=True)
    os.utime(files[0], ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    vol = load(ref)
    assert vol.metadata["slice_positions"][-1] == pytest.approx(20.0)
    assert vol.metadata == read_dicom_series(files).metadata


def test_every_member_of_a_discovered_series_carries_its_header_without_pixels(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ser", ZS[:2])
    ct_slice(30.0, str(pydicom.dcmread(files[0]).SeriesInstanceUID), 9).save_as(
        tmp_path / "ser" / "z.dcm", enforce_file_format=True
    )
    ref = _discovered(tmp_path / "ser")
    assert ref.headers is not None and set(ref.headers) == set(ref.files)
    for header in ref.headers.values():  # 32 KB of pixels each, under DEFER_SIZE: still left in the file
        assert header.dataset.get_item("PixelData", keep_deferred=True).value is None
    assert load(ref).shape == (3, 128, 128)


def test_a_file_whose_tail_does_not_parse_stays_in_the_series_and_fails_the_load(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ser", ZS)
    broken = b"\x10\x00\x10\x00SQ\x00\x00\xff\xff\xff\xffgarbagegarbage"  # a sequence that never ends
    files[2].write_bytes(files[2].read_bytes() + broken)
    ref = _discovered(tmp_path / "ser")  # its header (all discovery needs) reads fine
    assert ref.headers is not None and files[2] not in ref.headers and len(ref.headers) == 3
    with pytest.raises(InputError, match="corrupt or truncated DICOM") as err:
        load(ref)
    with pytest.raises(InputError) as direct:
        read_dicom_series(files)
    assert str(err.value) == str(direct.value) and "\n" not in str(err.value)


def test_discovery_keeps_a_bounded_number_of_headers(
    tmp_path: Path, parses: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder of many studies must not hold every file's header until it is scanned."""
    import medforensics.io.dicom as dicom

    monkeypatch.setattr(dicom, "KEEP_HEADERS", 3)
    files = write_ct_series(tmp_path / "ser", ZS)
    parses.clear()
    ref = _discovered(tmp_path / "ser")
    assert ref.headers is not None and len(ref.headers) == 3
    vol = load(ref)
    assert sorted(parses.values()) == [1, 1, 1, 2]  # the fourth file is parsed again by the reader
    np.testing.assert_array_equal(vol.array, read_dicom_series(files).array)


def test_discovering_many_files_holds_no_header_per_file_past_the_kept_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archive of a million files must not hold a million headers while its series are grouped (25 KB
    each for a CT slice: 25 GB): discovery keeps per file only what grouping and joining need."""
    import tracemalloc

    import medforensics.io.dicom as dicom

    monkeypatch.setattr(dicom, "KEEP_HEADERS", 0)
    for k in range(6):  # 6 studies of 20 slices, each slice with a long private block as real CT has
        files = write_ct_series(tmp_path / f"study{k}", [float(z) for z in range(20)])
        for f in files:
            ds = pydicom.dcmread(f)
            ds.private_block(0x0029, "ACME 1.0", create=True).add_new(0x10, "UT", "x" * 20000)
            ds.save_as(f)
    discover([tmp_path])  # imports and caches
    tracemalloc.start()
    try:
        found = discover([tmp_path])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(found.series) == 6 and all(not r.headers for r in found.series)
    assert peak < 120 * 20000  # less than one private block per file (held: 13.5 MB; now about 0.35)


def test_discovery_says_how_many_headers_it_has_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medforensics.io.dicom as dicom

    monkeypatch.setattr(dicom, "PROGRESS_EVERY", 2)
    write_ct_series(tmp_path / "a", ZS)
    write_ct_series(tmp_path / "b", ZS[:2])
    (tmp_path / "notes.txt").write_text("not an image")
    calls: list[tuple[int, int]] = []
    found = discover([tmp_path], on_file=lambda done, total: calls.append((done, total)))
    assert len(found.series) == 2
    assert calls == [(0, 7), (2, 7), (4, 7), (6, 7), (7, 7)]  # the text file is a DICOM candidate too
