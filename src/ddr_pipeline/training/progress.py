"""Training's progress bar, drawn with :mod:`rich` so log lines print above it."""

from __future__ import annotations


class ProgressBar:
    """A tqdm-like progress bar drawn with :mod:`rich` on the console the log handler uses.

    Kedro logs through a rich handler on rich's global console; a rich progress bar on that same
    console keeps log lines above the bar instead of breaking it (a tqdm bar on stderr does not).
    Use as a context manager; ``update`` advances, ``set_postfix`` shows key=value pairs.
    """

    def __init__(self, total: int, description: str, disable: bool = False) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("<"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[postfix]}"),
            disable=disable,
            transient=False,
        )
        self._task = self._progress.add_task(description, total=total, postfix="")

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps."""
        self._progress.advance(self._task, n)

    def set_postfix(self, **fields: object) -> None:
        """Show ``key=value`` pairs after the bar."""
        text = ", ".join(f"{key}={value}" for key, value in fields.items())
        self._progress.update(self._task, postfix=text)
