"""Progress reports from library code to whoever shows them: the CLI turns them into lines and
tqdm bars (msq/cli.py); library code never prints.

A report is either a line of text (a stage started, a phase of a tool) or a :class:`Step` of a
long task: ``done`` of ``total`` units, so a display can show a bar with an ETA. A task whose
length is unknown sends ``total=None`` and ends with a step where ``total == done``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Step:
    """``done`` units of ``task`` out of ``total`` (None: unknown yet); ``note`` is a short status."""

    task: str
    done: int
    total: int | None = None
    unit: str = "it"
    note: str = ""

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total


Progress = Callable[[str | Step], None]


def silent(report: str | Step) -> None:
    """The default receiver: reports go nowhere."""


def indented(progress: Progress, prefix: str = "  ") -> Progress:
    """``progress`` with text lines indented (steps pass unchanged), for a sub-task's reports."""
    return lambda report: progress(prefix + report if isinstance(report, str) else report)


@contextmanager
def follow(path: Path, on_line: Callable[[str], None], interval: float = 0.2) -> Iterator[None]:
    """Call ``on_line`` with every line of the file ``path`` (a tool's log, which the caller has
    removed beforehand) as the body's tool writes it, from a background thread; the lines left at
    the end are delivered before returning."""
    stop = threading.Event()
    offset = 0

    def read_new() -> None:
        nonlocal offset
        if not path.is_file():
            return
        with path.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # only whole lines; a partial one is read next time
        offset += end
        for line in chunk[:end].decode(errors="replace").splitlines():
            on_line(line)

    def loop() -> None:
        while not stop.wait(interval):
            read_new()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        read_new()

