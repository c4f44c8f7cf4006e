"""The tiny dense-localiser configuration shared by the tests: the tiny forge data set, the tiny network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from medforensics.train.dense import DenseConfig
from tests.forge._tiny_ct import shared_tiny_dataset


def tiny_config(out: str | Path = "unused", **changes: Any) -> DenseConfig:
    """A config that trains in seconds (``test_tamperseg3d``, 8 x 32 x 32 patches, batches of 2; the
    lossy operating point on the quickest codec alone unless ``lossy_codecs`` says otherwise)."""
    root, _ = shared_tiny_dataset()
    changes = {"lossy_codecs": ["jls-3"], **changes}
    return DenseConfig(
        data=str(root), out=str(out), model="test_tamperseg3d", patch=(8, 32, 32), batch_size=2, **changes
    )


class Stop(Exception):
    """Stands for the kill of a run (a time limit, a lost machine, the end of a session)."""


def stop_at_second_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dense training raises :class:`Stop` at its second evaluation (its resume point is then the first's)."""
    from medforensics.train import dense

    real = dense.scan_scores
    calls = {"n": 0}

    def scores(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Stop
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dense, "scan_scores", scores)
