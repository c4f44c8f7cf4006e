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
