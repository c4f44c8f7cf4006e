"""Ctrl-C: exit status 130 with one line on stderr saying so (typer alone exits silently)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def test_ctrl_c_says_interrupted_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import medforensics.cli.scan as scan_cli
    from medforensics.cli import main

    def interrupted(model: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(scan_cli, "load_detectors", interrupted)
    monkeypatch.setenv("MEDFORENSICS_HOME", str(tmp_path / "home"))
    out = tmp_path / "scan.json"
    monkeypatch.setattr(
        sys, "argv", ["medforensics", "scan", str(tmp_path), "--json", str(out), "--no-audit"]
    )
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines() == ["interrupted"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no partial output


def test_other_exits_say_nothing_more(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from medforensics.cli import main

    monkeypatch.setattr(sys, "argv", ["medforensics", "--version"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (0, None) and "interrupted" not in capsys.readouterr().err
