"""Atomic output helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medforensics._atomic import atomic_path, write_text_atomic


def test_written_file_gets_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert out.read_text() == "x"
    assert out.stat().st_mode & 0o777 == 0o644


def test_failure_leaves_target_untouched_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("original")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "original"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_folder_output_replaces_previous_folder(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_private_output_is_owner_only_and_safetensors_output_is_readable(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    with atomic_path(tmp_path / "secret.pem", private=True) as tmp:
        tmp.write_text("key")
    assert (tmp_path / "secret.pem").stat().st_mode & 0o077 == 0
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "w.safetensors") as tmp:
            save_file({"a": torch.zeros(2)}, str(tmp))  # safetensors itself creates 0600 files
    finally:
        os.umask(old)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644


def test_an_output_that_cannot_be_written_is_one_error_naming_it(tmp_path: Path) -> None:
    import errno

    from medforensics.errors import OutputError

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(OutputError, match=r"a_file/out\.txt: cannot be written"):
        write_text_atomic(a_file / "out.txt", "y")
    (tmp_path / "a_dir").mkdir()
    with pytest.raises(OutputError, match="a_dir: is a folder"):
        write_text_atomic(tmp_path / "a_dir", "y")
    target = tmp_path / "full.txt"
    full = r"full\.txt: cannot be written \(No space left on device\)"
    with pytest.raises(OutputError, match=full), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir", "a_file"]  # no temporary left


def test_a_fifo_gets_the_bytes_written_into_it_and_stays_a_fifo(tmp_path: Path) -> None:
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_text_atomic(fifo, "report")
    reader.join(5)
    assert got == [b"report"] and stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temporary beside it


def test_a_character_device_is_written_into_not_replaced(tmp_path: Path) -> None:
    import stat

    null = tmp_path / "null"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("mknod needs root")
    write_text_atomic(null, "report")
    assert stat.S_ISCHR(null.lstat().st_mode) and null.read_bytes() == b""
    link = tmp_path / "devnull"
    link.symlink_to(os.devnull)
    write_text_atomic(link, "report")
    assert link.is_symlink() and stat.S_ISCHR(Path(os.devnull).stat().st_mode)


def test_a_socket_is_refused(tmp_path: Path) -> None:
    import socket

    from medforensics._atomic import check_writable
    from medforensics.errors import OutputError

    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(OutputError, match="s: is not a regular file"):
            check_writable(sock_path)
        with pytest.raises(OutputError, match="s: is not a regular file"):
            write_text_atomic(sock_path, "x")


def test_a_symlink_to_a_file_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]


def test_a_name_of_255_bytes_can_be_written(tmp_path: Path) -> None:
    for name in ("a" * 250 + ".json", "é" * 125 + ".json"):
        out = write_text_atomic(tmp_path / name, "x")
        assert out.read_text() == "x"
    target = tmp_path / ("d" * 255)
    with atomic_path(target) as tmp:
        tmp.mkdir()
    with atomic_path(target) as tmp:  # a folder replacing a folder goes through a backup name too
        tmp.mkdir()
        (tmp / "f").write_text("y")
    assert (target / "f").read_text() == "y"


def test_check_not_input_refuses_any_existing_file_inside_an_input_folder(tmp_path: Path) -> None:
    from medforensics._atomic import check_not_input
    from medforensics.errors import OutputError

    series = tmp_path / "series"
    series.mkdir()
    (series / "69.xml").write_text("<LidcReadMessage/>")
    (series / "a.nii").write_bytes(b"\0" * 400)
    for name in ("69.xml", "a.nii"):
        with pytest.raises(OutputError, match=f"{name}: is a file of the input"):
            check_not_input(series / name, [series])
    check_not_input(series / "new.json", [series])  # a new file inside an input folder is allowed
    check_not_input(tmp_path / "elsewhere.json", [series])
    with pytest.raises(OutputError, match="is the input"):
        check_not_input(series / "a.nii", [series / "a.nii"])
