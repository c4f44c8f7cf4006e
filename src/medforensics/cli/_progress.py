"""A rich progress bar for the long commands (transient: gone when the command is done)."""

from __future__ import annotations

from typing import Any

from medforensics._text import printable


class Bar:
    """A rich progress bar driven by ``on_progress(index, total, label)``, described as ``verb label``."""

    def __init__(self, verb: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.verb = verb
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),  # a series' path is text, not markup
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        )
        self.task: Any = None

    def __enter__(self) -> Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, index: int, total: int, label: str) -> None:
        if self.task is None:
            self.task = self.progress.add_task(self.verb, total=max(total, 1))
        label = printable(label)  # a UTF-8 terminal cannot print a file name's undecodable bytes
        name = label if len(label) <= 60 else "..." + label[-57:]
        self.progress.update(
            self.task, completed=index, total=max(total, 1), description=f"{self.verb} {name}"
        )
