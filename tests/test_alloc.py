"""The allocator's thresholds (``medforensics._alloc``): raised where glibc takes them, left alone when the
user says so, and followed by the command line's scans and their workers.

The thresholds are process-wide, so what they do is checked in fresh interpreters: a 64 MB array is a
block of its own (glibc's ``mallinfo2().hblks``) with glibc's settings and comes from the heap once they
are raised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from medforensics import _alloc
from medforensics.cli import app

PROBE = """
import ctypes, json
import numpy as np
from medforensics._alloc import allocator_tuned, tune_allocator

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
tuned = tune_allocator()
before = libc.mallinfo2().hblks
a = np.ones(64 * 2**20, np.uint8)
during = libc.mallinfo2().hblks
print(json.dumps({"tuned": tuned, "again": tune_allocator(), "state": allocator_tuned(),
                  "own_blocks": during - before}))
"""


def _has_mallinfo2() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _has_mallinfo2(), reason="glibc >= 2.33 only"
)


def _probe(**env: str) -> dict[str, object]:
    full = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", _alloc.ENV)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env={**full, **env}
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_raised_thresholds_serve_a_large_array_from_the_heap() -> None:
    got = _probe()
    assert got == {"tuned": True, "again": True, "state": True, "own_blocks": 0}


@glibc
def test_a_threshold_in_mb_is_taken_from_the_environment() -> None:
    # 32 MB: raised, but the 64 MB array is over it and stays a block of its own
    got = _probe(**{_alloc.ENV: "32"})
    assert got == {"tuned": True, "again": True, "state": True, "own_blocks": 1}


@glibc
def test_default_leaves_glibc_mapping_a_large_array_on_its_own() -> None:
    got = _probe(**{_alloc.ENV: "default"})
    assert got == {"tuned": False, "again": False, "state": False, "own_blocks": 1}


@glibc
def test_a_malloc_tunable_the_user_set_is_left_as_it_is() -> None:
    # the user's threshold (1 MB) keeps the 64 MB array a block of its own: ours would have moved it
    got = _probe(GLIBC_TUNABLES="glibc.malloc.mmap_threshold=1048576")
    assert got == {"tuned": False, "again": False, "state": False, "own_blocks": 1}


def test_scan_and_demo_raise_the_thresholds_before_they_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(_alloc, "tune_allocator", lambda: calls.append("tuned") or True)
    monkeypatch.setenv("MEDFORENSICS_HOME", str(tmp_path / "home"))
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"garbage" * 10)
    r = CliRunner().invoke(app, ["scan", str(bad), "--model", str(tmp_path / "none"), "--no-audit"])
    assert r.exit_code == 2 and calls == ["tuned"]
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "mine.txt").write_text("not the demo's")  # a folder the demo refuses to use
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo")])
    assert r.exit_code == 2 and calls == ["tuned", "tuned"]


def test_workers_follow_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    from medforensics.scan import parallel

    for state in (True, False):
        monkeypatch.setitem(_alloc._state, "tuned", state)
        setup = parallel.Setup.share(object(), None, None, None, jobs=2)  # type: ignore[arg-type]
        assert setup.tuned_allocator is state
    seen: list[str] = []
    monkeypatch.setattr(_alloc, "tune_allocator", lambda: seen.append("tuned") or True)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # this process's threads stay
    monkeypatch.setattr(parallel, "_WORKER", {})
    parallel._init(parallel.Setup(object(), None, None, None, 1, tuned_allocator=True))  # type: ignore[arg-type]
    parallel._init(parallel.Setup(object(), None, None, None, 1, tuned_allocator=False))  # type: ignore[arg-type]
    assert seen == ["tuned"]


RELEASE = """
import json
import numpy as np
from medforensics._alloc import release_free_memory, tune_allocator

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

tune_allocator()
a = np.ones(128 * 2**20, np.uint8)
held = rss_mb()
del a  # with the thresholds raised, its pages stay with the process for the next array
kept = rss_mb()
release_free_memory()
print(json.dumps({"held": held, "kept": kept, "released": rss_mb()}))
"""


@glibc
def test_free_memory_the_raised_thresholds_keep_is_handed_back_between_stages() -> None:
    full = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", _alloc.ENV)}
    cmd = [sys.executable, "-c", RELEASE]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=full)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["kept"] > got["held"] - 16  # freed, but kept
    assert got["released"] < got["kept"] - 100  # handed back
