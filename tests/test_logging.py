"""The command line's logging: one format, each distinct warning once, -v's detail in worker processes."""

from __future__ import annotations

import logging
import subprocess
import sys

from medforensics.logging import OnceFilter


def _record(msg: str, level: int = logging.WARNING, name: str = "medforensics.io") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_each_distinct_warning_passes_once_and_infos_always() -> None:
    once = OnceFilter()
    assert once.filter(_record("series 1.2: irregular slice spacing"))
    assert not once.filter(_record("series 1.2: irregular slice spacing"))  # a report writer's re-read
    assert once.filter(_record("series 1.3: irregular slice spacing"))  # another series
    assert once.filter(_record("series 1.2: irregular slice spacing", name="medforensics.other"))
    assert once.filter(_record("series 1.2: irregular slice spacing", level=logging.ERROR))
    assert all(once.filter(_record("progress", level=logging.INFO)) for _ in range(3))


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_configure_formats_filters_and_keeps_a_program_s_own_setup() -> None:
    code = (
        "import logging\nfrom medforensics.logging import configure, get_logger\n{setup}configure({level})\n"
        "log = get_logger('io')\nfor m in ('a', 'a', 'b'): log.warning(m)\nlog.info('detail')\n"
    )
    out = _run(code.format(setup="", level="logging.WARNING"))
    assert out.splitlines() == ["WARNING medforensics.io: a", "WARNING medforensics.io: b"]
    assert "INFO medforensics.io: detail" in _run(code.format(setup="", level="logging.INFO"))
    own = _run(code.format(setup="logging.basicConfig(format='%(message)s')\n", level="logging.WARNING"))
    assert own.splitlines() == ["a", "a", "b"]  # a program's own handler is left as it set it up
