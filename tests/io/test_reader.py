"""Series discovery and generic loading over mixed folders of real and generated files."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from medforensics.errors import InputError
from medforensics.io.dicom import discover_dicom_series
from medforensics.io.metaimage import write_metaimage
from medforensics.io.nifti import write_nifti
from medforensics.io.reader import Discovery, SeriesRef, discover, load, read_volume
from medforensics.io.volume import Volume
from tests.io._dicom_series import CT_SMALL, write_ct_series


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """An archive: two studies, two series in one folder, other formats, junk, hidden and empty things."""
    root = tmp_path / "archive"
    write_ct_series(root / "p1" / "study" / "ser1", [0.0, 5.0, 10.0], series_uid="1.2.826.0.1.1")
    write_ct_series(root / "p2" / "mixed", [0.0, 5.0], series_uid="1.2.826.0.1.2", names=["a1", "a2"])
    write_ct_series(root / "p2" / "mixed", [0.0], series_uid="1.2.826.0.1.3", names=["b1.dcm"])
    vol = Volume(np.arange(24, dtype=np.float32).reshape(2, 3, 4), modality="CT")
    write_nifti(vol, root / "other" / "scan.nii.gz")
    write_metaimage(vol, root / "other" / "luna.mhd")
    (root / "other" / "orphan.raw").write_bytes(b"\x00" * 16)
    (root / "other" / "notes.txt").write_text("not an image\n" * 20)
    (root / "other" / "zero.dcm").touch()
    (root / "other" / ".hidden.dcm").write_bytes(CT_SMALL.read_bytes())
    (root / ".cache").mkdir()
    shutil.copy(CT_SMALL, root / ".cache" / "x.dcm")
    (root / "empty").mkdir()
    return root


def test_discover_archive(tree: Path) -> None:
    found = discover([tree, tree / "nope"])
    kinds = [(s.kind, s.path.relative_to(tree).as_posix(), len(s.files)) for s in found.series]
    assert kinds == [
        ("metaimage", "other/luna.mhd", 2),
        ("nifti", "other/scan.nii.gz", 1),
        ("dicom", "p1/study/ser1", 3),
        ("dicom", "p2/mixed", 2),  # extension-less files recognised by content
        ("dicom", "p2/mixed/b1.dcm", 1),
    ]
    dicom = [s for s in found.series if s.kind == "dicom"]
    assert [s.series_uid for s in dicom] == ["1.2.826.0.1.1", "1.2.826.0.1.2", "1.2.826.0.1.3"]
    assert dicom[0].description.startswith("CT, 3 file(s)")
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert reasons["nope"] == "does not exist"
    assert "empty" not in reasons  # an empty sub-folder of an archive is not worth a line
    assert [(s.path.name, s.reason) for s in discover([tree / "empty"]).skipped] == [
        ("empty", "no images found")
    ]
    assert reasons["zero.dcm"] == "empty file (0 bytes)"
    assert "not DICOM" in reasons["notes.txt"]
    assert "without a .mhd or .nhdr header" in reasons["orphan.raw"]
    assert "luna.raw" not in reasons  # the data file of luna.mhd is not a series nor junk
    assert not any(".hidden" in str(s.path) or ".cache" in str(s.path) for s in found.series + found.skipped)
    assert discover([tree]).series == discover([tree]).series  # deterministic


def test_many_headers_are_read_on_worker_processes_with_the_same_discovery(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``jobs`` > 1 and many files: the headers are read on that many processes (an archive's minutes of
    header reading, about 1.6x faster on 2 cores for 3600 files); the series and what is skipped are the
    same, only no header is kept for the reader (it parses each file again, as past KEEP_HEADERS)."""
    import multiprocessing

    from medforensics.io import dicom

    (tree / "p1" / "study" / "ser1" / "sr.dcm").write_bytes(b"\x00" * 128 + b"DICM")  # a broken one too
    here = discover([tree])
    monkeypatch.setattr(dicom, "PARALLEL_FILES", 2)
    seen: list[tuple[int, int]] = []
    there = discover([tree], jobs=2, on_file=lambda done, total: seen.append((done, total)))
    assert there == here and there.skipped and seen[-1][0] == seen[-1][1] > 2
    assert all(not s.headers for s in there.series) and any(s.headers for s in here.series)
    # closed early (an interrupt): the processes are stopped, not waited for
    files = sorted((tree / "p1").rglob("*.dcm")) * 50
    probes = dicom._probed(files, 2)
    next(probes)
    probes.close()
    assert multiprocessing.active_children() == []
    # a worker that dies (out of memory) leaves the files not yet read to this process: the same discovery

    class Dying:
        def __init__(self, *a: object) -> None:
            self._processes: dict[int, object] = {}

        def map(self, fn, items, chunksize=1):  # type: ignore[no-untyped-def]
            from concurrent.futures.process import BrokenProcessPool

            yield from (fn(f) for f in list(items)[:2])
            raise BrokenProcessPool("killed")

        def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
            pass

    monkeypatch.setattr(dicom, "ProcessPoolExecutor", Dying)
    assert discover([tree], jobs=2) == here


def test_discover_not_recursive_and_single_file(tree: Path) -> None:
    assert discover([tree], recursive=False).series == []
    one = discover([tree / "p2" / "mixed" / "b1.dcm"])
    assert [s.series_uid for s in one.series] == ["1.2.826.0.1.3"]


def test_discover_dicom_series_skips_unreadable(tree: Path, tmp_path: Path) -> None:
    trunc = tmp_path / "trunc.dcm"
    trunc.write_bytes(CT_SMALL.read_bytes()[:100])
    series, skipped = discover_dicom_series([*sorted((tree / "p1").rglob("*.dcm")), trunc])
    assert len(series) == 1 and len(series[0].files) == 3
    assert [s.path for s in skipped] == [trunc]


def test_load_dispatches(tree: Path) -> None:
    found = discover([tree])
    by_kind = {s.kind: load(s) for s in found.series}
    assert by_kind["nifti"].shape == (2, 3, 4)
    assert by_kind["metaimage"].shape == (2, 3, 4)
    dicom = load(found.series[2])
    assert dicom.shape == (3, 128, 128) and dicom.source == tree / "p1" / "study" / "ser1"
    with pytest.raises(InputError, match="unknown series kind"):
        load(SeriesRef(tree, "video", (tree,)))


def test_read_volume(tree: Path) -> None:
    assert read_volume(tree / "p1").shape == (3, 128, 128)
    assert read_volume(tree / "other" / "scan.nii.gz").shape == (2, 3, 4)
    with pytest.raises(InputError, match="holds 2 series; pass one series folder"):
        read_volume(tree / "p2")
    with pytest.raises(InputError, match="no images found"):
        read_volume(tree / "empty")
    with pytest.raises(InputError, match="does not exist"):
        read_volume(tree / "missing")
    with pytest.raises(InputError, match="0 bytes"):
        read_volume(tree / "other" / "zero.dcm")


@pytest.mark.shared
def test_discover_shared_data(shared_data: Path) -> None:
    found = discover([shared_data])
    lidc = [s for s in found.series if "lidc-idri-slabs" in str(s.path)]
    assert [len(s.files) for s in lidc] == [16, 12, 11]
    assert all(s.kind == "dicom" and s.series_uid for s in lidc)
    assert any(s.path.name == "ref_scan.dcm" for s in found.series)  # a copy elsewhere: its own series
    assert sum(s.kind == "image" for s in found.series) == 2
    assert {s.path.suffix for s in found.skipped} >= {".xml", ".csv"}


def test_links_in_a_loop_and_what_cannot_be_read_are_skipped_with_a_reason(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tree / "p1" / "loop").symlink_to("loop")  # a link to itself
    (tree / "p1" / "locked").mkdir()
    locked_file = tree / "p1" / "study" / "ser1" / "locked.dcm"
    shutil.copy(next((tree / "p1" / "study" / "ser1").iterdir()), locked_file)
    scandir, path_open = os.scandir, Path.open

    def no_listing(path: object = ".") -> object:  # as for a folder of mode 000 (tests may run as root)
        if Path(str(path)).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)  # type: ignore[arg-type]

    def no_reading(self: Path, *args: object, **kw: object) -> object:
        if self.name == "locked.dcm":
            raise PermissionError(13, "Permission denied", str(self))
        return path_open(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", no_listing)
    monkeypatch.setattr(Path, "open", no_reading)
    found = discover([tree, tree / "p1" / "loop"])
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert reasons["loop"] == "symbolic link loop"
    assert reasons["locked"] == reasons["locked.dcm"] == "cannot be read (Permission denied)"
    assert [s.series_uid for s in found.series if s.kind == "dicom"] == [
        "1.2.826.0.1.1",
        "1.2.826.0.1.2",
        "1.2.826.0.1.3",
    ]


def test_read_volume_whole_refuses_a_skipped_slice_and_ignores_a_stray_file(tmp_path: Path) -> None:
    from tests.io._dicom_series import write_ct_series

    files = write_ct_series(tmp_path / "s", [0.0, 2.0, 4.0])
    (tmp_path / "s" / "notes.txt").write_text("a stray file, not a slice")
    assert read_volume(tmp_path / "s", whole=True).shape[0] == 3
    files[1].write_bytes(b"")  # left out by default: the series is read with two slices
    assert read_volume(tmp_path / "s").shape[0] == 2
    with pytest.raises(InputError, match=f"{files[1].name}: .*would lack this slice"):
        read_volume(tmp_path / "s", whole=True)


def test_pixels_that_do_not_fit_in_memory_are_an_input_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header whose image size is a lie (an RLE series saying 60000 x 60000) makes the reader allocate it:
    forge and the other readers' callers get a one-line InputError naming the file, not an internal error."""
    import medforensics.io.nifti as nifti
    import medforensics.io.reader as reader

    path = write_nifti(Volume(np.zeros((4, 8, 8), np.float32), spacing=(1.0, 1.0, 1.0)), tmp_path / "v.nii")
    files = write_ct_series(tmp_path / "ct", [0.0, 5.0, 10.0])

    def huge(*_a: object, **_k: object) -> None:
        raise MemoryError("Unable to allocate 268. GiB for an array with shape (20, 60000, 60000)")

    monkeypatch.setattr(nifti, "read_nifti", huge)
    monkeypatch.setattr(reader, "read_dicom_series", huge)
    why = r"out of memory for its pixels \(Unable to allocate 268\. GiB"
    for target in (path, tmp_path / "ct", files[0]):
        with pytest.raises(InputError, match=why) as err:
            read_volume(target)
        assert str(target) in str(err.value) and "corrupt image size in its header" in str(err.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_pipes_and_devices_in_a_tree_are_skipped_unopened(tree: Path, tmp_path: Path) -> None:
    """Opening a named pipe waits for a writer and a device may never end: discovery (and the archive
    check after it) must skip them by their type, never open them. Named as what would be opened."""
    from medforensics.io.archives import expand_archives

    other = tree / "other"
    pipes = [tree / "p1" / "study" / "ser1" / "pipe.dcm", other / "pipe.mhd", other / "p.zip"]
    for p in pipes:
        os.mkfifo(p)
    (other / "zero").symlink_to("/dev/zero")
    result: dict[str, object] = {}

    def run() -> None:
        found = discover([tree])
        result["found"], _ = expand_archives(found, tmp_path / "scratch")
        try:
            read_volume(pipes[0])
        except InputError as err:
            result["error"] = err.one_line()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():  # release the reader stuck on a pipe, then fail
        for p in pipes:
            with contextlib.suppress(OSError):
                os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("discovery opened a named pipe and waited for a writer")
    found = result["found"]
    assert isinstance(found, Discovery)
    reasons = {s.path.name: s.reason for s in found.skipped}
    for name in ("pipe.dcm", "pipe.mhd", "p.zip"):
        assert reasons[name] == "a named pipe, not a regular file"
    assert reasons["zero"] == "a device, not a regular file"
    assert [s.series_uid for s in found.series if s.kind == "dicom"] == [
        "1.2.826.0.1.1",
        "1.2.826.0.1.2",
        "1.2.826.0.1.3",
    ]
    assert result["error"] == f"{pipes[0]}: a named pipe, not a regular file"
