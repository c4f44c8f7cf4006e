"""The forge's sample writer: the forging process renders as a worker does (``jobs`` changes nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from medforensics.forge import dataset_writer as W


def test_the_forging_process_renders_with_a_workers_one_thread_and_puts_torchs_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Session 67: with ``jobs`` 1 the DCGAN's pixels were summed over torch's 2 threads, in a worker over 1,
    and 15 of 60 syntheses of `forge dataset --seed 1` differed by 1 HU in places."""
    seen: list[int] = []

    def fake_render(out: Path, d: Any, sub: Any, mask: Any, attacks: Any) -> str:
        seen.append(torch.get_num_threads())
        return "rendered"

    monkeypatch.setattr(W, "render", fake_render)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = []
        for item in W.render_all(tmp_path, [(None, None, None)] * 3, {}, jobs=1):  # type: ignore[list-item]
            got.append(item)
            assert torch.get_num_threads() == 2  # the caller's threads between samples
        assert got == ["rendered"] * 3 and seen == [1, 1, 1]
    finally:
        torch.set_num_threads(before)
