"""Shared test fixtures. Tests must pass without ../shared; those that need it skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: ``../shared/data`` beside the repository (developer machines and CI only).
_SHARED = os.environ.get("MEDFORENSICS_SHARED", Path(__file__).resolve().parents[2] / "shared")
SHARED_DATA = Path(_SHARED) / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch() -> None:
    """Tests run in parallel on 2 cores: keep PyTorch single-threaded."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)
