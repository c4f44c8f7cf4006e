"""Real test images that installed packages ship (pydicom-data), found without any download."""

from __future__ import annotations

from pathlib import Path

import pytest


def pydicom_testdata(name: str) -> Path:
    """The path of pydicom-data's (or pydicom's) test file ``name``; the test is skipped when it is absent."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom-data {name} not installed")
    return Path(str(path))
