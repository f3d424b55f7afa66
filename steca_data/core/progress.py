"""Progress reporting: rich bars (done/total, rate, ETA) on a terminal, plain log lines with --quiet."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

log = logging.getLogger("steca_data")


class Reporter:
    """Stages call ``with reporter.track(name, total) as advance: advance(n)``; they never print."""

    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.quiet = quiet
        self.console = console or Console(stderr=True)

    def info(self, message: str) -> None:
        if self.quiet:
            log.info(Text.from_markup(message).plain)
        else:
            self.console.print(message)

    @contextmanager
    def track(self, name: str, total: int, unit: str = "units") -> Iterator:
        if self.quiet:
            start, state = time.monotonic(), {"done": 0, "last": 0.0, "total": total}

            def advance(n: int = 1, more: int = 0) -> None:
                state["done"] += n
                state["total"] += more
                now = time.monotonic()
                if n and (now - state["last"] > 5 or state["done"] == state["total"]):
                    state["last"] = now
                    rate = state["done"] / max(now - start, 1e-9)
                    log.info("%s: %d/%d %s (%.1f/s)", name, state["done"], state["total"], unit, rate)

            yield advance
            return
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("[cyan]{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task(name, total=total, rate="")
            start = time.monotonic()

            def advance(n: int = 1, more: int = 0) -> None:
                """``more``: units that joined the stage while it ran (the bar's total grows)."""
                if more:
                    progress.update(task, total=progress.tasks[0].total + more)
                progress.advance(task, n)
                done = progress.tasks[0].completed
                rate = done / max(time.monotonic() - start, 1e-9)
                progress.update(task, rate=f"{rate:.1f} {unit}/s")

            yield advance
