"""Text from paths is printed as it is, and a log gets the whole table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from medforensics.cli._console import LOG_WIDTH, console
from medforensics.cli._progress import Bar


def test_a_console_that_is_not_a_terminal_is_log_wide() -> None:
    out = console()  # pytest captures stdout: not a terminal
    assert not out.is_terminal and out.width == LOG_WIDTH


def test_the_progress_bar_shows_a_bracketed_series_name_as_it_is() -> None:
    with Bar("scanning") as bar:
        for i, name in enumerate(["study/x[/]y", "study/CT [contrast]", "end\\"]):
            bar(i, 3, name)
            task = bar.progress.tasks[0]
            shown = bar.progress.columns[0].render(task).plain  # type: ignore[union-attr]
            assert shown == f"scanning {name}"


def test_a_file_name_that_is_not_utf8_prints_on_a_strict_stdout(tmp_path: Path) -> None:
    name = os.fsdecode(b"b\xff.dcm")
    (tmp_path / name).write_bytes(b"not dicom")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "MEDFORENSICS_HOME": str(tmp_path / "home")}
    r = subprocess.run(
        [sys.executable, "-m", "medforensics", "verify", str(tmp_path / name)],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert b"internal error" not in r.stderr and r.returncode in (0, 2), r.stderr
    assert b"b\xff.dcm" in r.stdout + r.stderr
