"""What a user sees on stderr: one line per problem, never a library's traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pydicom.data import get_testdata_file


def test_undecodable_pixel_data_is_one_line_without_pydicoms_traceback(tmp_path: Path) -> None:
    """pydicom logs a traceback for each JPEG decoder that fails; the scan's own line says it once."""
    lossy = get_testdata_file("JPEG-lossy.dcm")  # 12-bit JPEG Extended: the installed plugins refuse it
    env = {**os.environ, "MEDFORENSICS_HOME": str(tmp_path / "home")}
    r = subprocess.run(
        [sys.executable, "-m", "medforensics", "scan", str(lossy), "--no-audit", "--no-signatures"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 2 and "cannot decode pixel data" in r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "ERROR pydicom" not in r.stderr
