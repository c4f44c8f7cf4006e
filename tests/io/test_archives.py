"""ZIP archives of studies are unpacked to a scratch folder and read as folders; the archive is only read."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from medforensics.io.archives import MAX_DEPTH, archive_kind, expand_archives, unpack
from medforensics.io.reader import discover
from tests.io._dicom_series import write_ct_series

UID = "1.2.826.0.1.78"


def _zip_folder(folder: Path, archive: Path, prefix: str = "") -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, prefix + f.relative_to(folder).as_posix())
        zf.writestr("__MACOSX/CT/._s0.dcm", b"\x00\x05\x16\x07 resource fork")
    return archive


def _study_zip(tmp_path: Path) -> Path:
    write_ct_series(tmp_path / "src" / "CT", [2.5 * k for k in range(4)], series_uid=UID)
    return _zip_folder(tmp_path / "src", tmp_path / "in" / "study.zip")


def test_a_study_zip_is_read_as_its_folder_and_shown_by_the_archive_path(tmp_path: Path) -> None:
    archive = _study_zip(tmp_path)
    before = hashlib.sha256(archive.read_bytes()).hexdigest()
    plain = discover([archive.parent])
    assert plain.series == [] and [s.path for s in plain.skipped] == [archive.parent, archive]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    found, shown = expand_archives(plain, scratch)
    assert [(shown(s.path), len(s.files), s.series_uid) for s in found.series] == [(f"{archive}/CT", 4, UID)]
    assert found.skipped == []  # neither the archive nor its folder ("no images found"), nor __MACOSX
    assert all(scratch in f.parents for f in found.series[0].files)
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == before


def test_archives_inside_archives_are_unpacked_up_to_the_depth_limit(tmp_path: Path) -> None:
    inner = _study_zip(tmp_path)
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "series/study.zip")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    found, shown = expand_archives(discover([outer]), scratch)
    assert [shown(s.path) for s in found.series] == [f"{outer}/series/study.zip/CT"]
    shallow, shown = expand_archives(discover([outer]), scratch, depth=1)
    assert shallow.series == []
    assert [(str(s.path), s.reason) for s in shallow.skipped] == [
        (str(outer), "no images found"),
        (f"{outer}/series/study.zip", "archive nested more than 1 deep: not unpacked"),
    ]
    assert MAX_DEPTH >= 2


def test_archives_that_cannot_be_unpacked_are_skipped_with_the_reason(tmp_path: Path) -> None:
    good = _study_zip(tmp_path)
    damaged = tmp_path / "in" / "damaged.zip"
    raw = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        first = zf.infolist()[0]
    raw[first.header_offset + 30 + len(first.filename) + first.compress_size // 2] ^= 0xFF  # a bit rot
    damaged.write_bytes(bytes(raw))
    encrypted = tmp_path / "in" / "locked.zip"
    raw = bytearray(good.read_bytes())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # set the encryption flag in every header
        at = raw.find(sig)
        while at >= 0:
            flag = 6 if sig == b"PK\x03\x04" else 8
            raw[at + flag] |= 1
            at = raw.find(sig, at + 4)
    encrypted.write_bytes(bytes(raw))
    cut = tmp_path / "in" / "cut.zip"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # a download stopped half way
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    found, _ = expand_archives(discover([tmp_path / "in"]), scratch)
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert "study.zip" not in reasons and len(found.series) == 1
    assert reasons["locked.zip"].startswith("encrypted ZIP archive")
    assert reasons["cut.zip"].startswith("ZIP archive cut short")
    assert archive_kind(damaged) == "zip" and reasons["damaged.zip"].startswith("damaged ZIP archive")
    assert len(list(scratch.iterdir())) == 1  # the damaged archive's partial folder was removed


def test_an_archive_larger_than_the_free_space_is_not_unpacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil as sh

    archive = _study_zip(tmp_path)
    usage = sh.disk_usage(tmp_path)
    monkeypatch.setattr("medforensics.io.archives.shutil.disk_usage", lambda _p: usage._replace(free=1000))
    with pytest.raises(Exception, match=r"unpacking needs \d+ MB, 0 MB free"):
        unpack(archive, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("zip-")] == []


def test_member_names_cannot_leave_the_scratch_folder(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../outside.dcm", b"x")
        zf.writestr("/abs/outside2.dcm", b"y")
    scratch = tmp_path / "deep" / "scratch"
    scratch.mkdir(parents=True)
    folder = unpack(archive, scratch)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "abs/outside2.dcm",
        "outside.dcm",
    ]
    assert not (tmp_path / "outside.dcm").exists()


def test_a_compressed_tar_is_read_and_its_links_and_escaping_members_are_left_out(tmp_path: Path) -> None:
    import io
    import tarfile

    write_ct_series(tmp_path / "src" / "CT", [2.5 * k for k in range(4)], series_uid=UID)
    archive = tmp_path / "export.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "src" / "CT", "study/CT")
        evil = tarfile.TarInfo("../../escaped.dcm")
        evil.size = 3
        tf.addfile(evil, io.BytesIO(b"bad"))
        link = tarfile.TarInfo("study/CT/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    assert archive_kind(archive) == "tar" and archive_kind(tmp_path / "src" / "CT" / "s0.dcm") is None
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    found, shown = expand_archives(discover([archive]), scratch)
    assert [(shown(s.path), len(s.files)) for s in found.series] == [(f"{archive}/study/CT", 4)]
    files = [p for p in scratch.rglob("*") if not p.is_dir()]
    assert len(files) == 4 and not any(p.is_symlink() for p in files)
    assert not (tmp_path / "escaped.dcm").exists()


def test_files_compressed_one_by_one_are_read_as_their_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A series gzipped file by file (``IM0001.dcm.gz``, as some research archives keep DICOM) was skipped
    file by file as "not DICOM"; now a folder's compressed files are decompressed into one scratch folder and
    read as one series, each file shown by its own path. bzip2 and xz too; a cut stream or one too large for
    the free space is skipped with its reason; the user's files are only read."""
    import bz2
    import gzip
    import lzma

    from medforensics.io import archives

    plain = write_ct_series(tmp_path / "src", [2.5 * k for k in range(4)], series_uid=UID)
    inbox = tmp_path / "in" / "CT"
    inbox.mkdir(parents=True)
    packers = [gzip.compress, gzip.compress, bz2.compress, lzma.compress]
    names = [f"{p.name}.gz" for p in plain[:2]] + [f"{plain[2].name}.bz2", f"{plain[3].name}.xz"]
    for src, name, pack in zip(plain, names, packers, strict=True):
        (inbox / name).write_bytes(pack(src.read_bytes()))
    (inbox / "a.dcm.bz2").write_bytes(bz2.compress(plain[0].read_bytes()))  # a.dcm from two streams
    (inbox / "a.dcm.gz").write_bytes(gzip.compress(plain[1].read_bytes()))
    (tmp_path / "in" / "cut.dcm.gz").write_bytes(gzip.compress(plain[0].read_bytes())[:4000])
    before = {p: p.read_bytes() for p in (tmp_path / "in").rglob("*") if p.is_file()}
    assert archive_kind(inbox / names[0]) == "gzip" and archive_kind(inbox / names[3]) == "xz"
    found = discover([tmp_path / "in"])
    assert found.series == []
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    expanded, shown = expand_archives(found, scratch)
    # the two a.dcm streams (copies of two slices) both decompressed, each under a name of its own
    everything = [*names, "a.dcm.bz2", "a.dcm.gz"]
    assert [(shown(s.path), len(s.files), s.series_uid) for s in expanded.series] == [(str(inbox), 6, UID)]
    assert sorted(shown(f) for f in expanded.series[0].files) == sorted(str(inbox / n) for n in everything)
    reasons = {Path(s.path).name: s.reason for s in expanded.skipped}
    assert (
        reasons["cut.dcm.gz"].startswith("damaged gzip stream") and "no images found" not in reasons.values()
    )
    assert {p: p.read_bytes() for p in (tmp_path / "in").rglob("*") if p.is_file()} == before
    # too large for the free space: refused with the reason, nothing left behind
    monkeypatch.setattr(archives, "RESERVE_BYTES", archives.shutil.disk_usage(scratch).free)
    folder, made, bad = archives.unpack_streams([(inbox / names[0], "gzip")], scratch)
    assert folder is None and made == {} and "needs more than" in bad[0].reason
    assert len(list(scratch.iterdir())) == 1  # only the first expansion's folder
