"""The benchmark scripts still import: every name they take from the package, or from a benchmark module
beside them, exists. They run outside the test suite, so a rename in the package breaks them silently
(session 49 renamed ``noise_map._residual`` to ``kv_residual``; ``benchmarks/noise_trace_probe.py`` failed
at its first line until session 51)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(BENCH.rglob("*.py"))


def _local(module: str, script: Path) -> bool:
    """``module`` is a benchmark script imported by name (the scripts put their folders on the path)."""
    return any((d / f"{module}.py").is_file() for d in (script.parent, BENCH, BENCH / "leaderboard"))


def missing_names(script: Path) -> list[str]:
    """``module.name`` for each ``from module import name`` of ``script`` (package or benchmark modules)
    whose module cannot be imported or lacks the name."""
    missing = []
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        if not (node.module.split(".")[0] == "medforensics" or _local(node.module, script)):
            continue
        try:
            module = importlib.import_module(node.module)
        except ImportError as err:
            missing.append(f"{node.module} ({err})")
            continue
        for alias in node.names:
            if alias.name == "*" or hasattr(module, alias.name):
                continue
            try:  # a submodule: from package import module
                importlib.import_module(f"{node.module}.{alias.name}")
            except ImportError:
                missing.append(f"{node.module}.{alias.name}")
    return missing


@pytest.fixture(autouse=True)
def _bench_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for folder in (BENCH / "leaderboard", BENCH):
        monkeypatch.syspath_prepend(str(folder))


def test_scripts_found() -> None:
    assert len(SCRIPTS) >= 30, [str(s) for s in SCRIPTS]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(BENCH)))
def test_benchmark_imports_resolve(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(script.parent))  # a script imports its folder's modules by name too
    assert missing_names(script) == []


def test_a_renamed_name_is_caught(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    lines = [
        "from medforensics.features.noise_map import LUNG_HU, _residual",
        "from scan_speed import nothing_here",
    ]
    script.write_text("\n".join(lines) + "\n")
    assert missing_names(script) == ["medforensics.features.noise_map._residual", "scan_speed.nothing_here"]
