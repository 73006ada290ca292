"""Long CLI work made visible and stoppable: progress that suits the output, and a clean stop.

On a terminal, a rich progress bar. Anywhere else (CI logs, a pipe), a plain line every few
seconds, `finished 1200/10000 (49.8/s, ETA 2 min 57 s)`, which a log keeps readable: no
carriage returns, no wrapping.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from grant_worker.worker.shown import shown


def say(text: str) -> None:
    """One line on stderr: never wrapped, never marked up, shown safely (`worker.shown`)."""
    click.echo(shown(text), err=True)


def human_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def progress_line(label: str, done: int, total: int, rate_per_s: float | None) -> str:
    """`label done/total (rate/s, ETA …)`; the ETA is unknown until something was done."""
    if not rate_per_s:
        return f"{label} {done}/{total} (ETA unknown)"
    eta = human_duration((total - done) / rate_per_s)
    return f"{label} {done}/{total} ({rate_per_s:.1f}/s, ETA {eta})"


class Meter:
    """Progress of one phase: a bar on a terminal, else a plain line every `interval_s`."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        done: int = 0,
        interval_s: float,
        terminal: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = done
        self._start_done = done
        self._interval_s = interval_s
        self._clock = clock
        self._started = self._last_line = clock()
        self._bar: Progress | None = None
        if terminal:
            self._bar = Progress(
                TextColumn("{task.description:>9}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._task = self._bar.add_task(label, total=total, completed=done)
            self._bar.start()

    @property
    def rate_per_s(self) -> float | None:
        elapsed = self._clock() - self._started
        moved = self.done - self._start_done
        return moved / elapsed if elapsed > 0 and moved > 0 else None

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            return
        now = self._clock()
        if now - self._last_line >= self._interval_s:
            self._last_line = now
            say(progress_line(self.label, self.done, self.total, self.rate_per_s))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        else:
            say(progress_line(self.label, self.done, self.total, self.rate_per_s))


class StopSignals:
    """While active, Ctrl-C (SIGINT) and SIGTERM ask the work to stop instead of killing it.

    The work checks `requested` between steps that must not be cut in half (an enqueued chunk
    and its ledger entries; a read of the results stream), then stops cleanly.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.received is not None

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            # A second Ctrl-C means "now": leave as Python would.
            raise KeyboardInterrupt
        self.received = signum
        say(f"{signal.Signals(signum).name}: stopping after the current step")

    def __enter__(self) -> StopSignals:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
