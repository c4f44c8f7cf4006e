"""Text from paths is printed as it is, and a log gets the whole table."""

from __future__ import annotations

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
