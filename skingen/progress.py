"""Progress you can read in a terminal and in a log file.

In a terminal ``progress`` is a tqdm bar. When stderr is not a terminal (a SLURM job, the local
executor's log files, ``> log 2>&1``) tqdm's bars would be switched off or smear carriage returns over
the log, so the loop writes a plain line through ``logging`` instead -- at the start, every
``SKINGEN_PROGRESS_SECONDS`` (default 30) seconds or 5 % of the total (at most one line a second),
whichever comes first, and at the end -- with the count, rate and ETA:

    stylegan2-ada: 120/400 step (30 %), 2.31 step/s, ETA 2 min 01 s
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Iterable, Iterator

from tqdm import tqdm

log = logging.getLogger("skingen.progress")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


class LogProgress:
    """tqdm's interface (iterate, update, set_postfix, close) writing plain log lines at intervals."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
                 initial: int = 0, interval: float | None = None, min_gap: float = 1.0):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n = self.start_n = initial
        self.interval = float(os.environ.get("SKINGEN_PROGRESS_SECONDS", 30)) if interval is None else interval
        self.step = max(1, -(-(self.total or 0) // 20))  # 5 %
        self.min_gap = min_gap  # seconds between two 5 % lines: a fast loop does not flood the log
        self.postfix, self.closed = "", False
        self.started = self.last_time = time.perf_counter()
        self.last_n = initial
        self._write()

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def set_postfix(self, **values) -> None:
        """Key=value pairs appended to each line (losses, p, ...)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        """Count ``n`` more; write a line when the interval or 5 % has passed."""
        self.n += n
        now = time.perf_counter()
        since = now - self.last_time
        if since >= self.interval or (self.n - self.last_n >= self.step and since >= self.min_gap):
            self._write(now)

    def close(self) -> None:
        """Write the closing line once."""
        if not self.closed:
            self.closed = True
            if self.n != self.last_n or self.n == self.start_n:
                self._write()

    def _write(self, now: float | None = None) -> None:
        now = now or time.perf_counter()
        self.last_time, self.last_n = now, self.n
        done = self.n - self.start_n
        rate = done / (now - self.started) if now > self.started and done else 0.0
        count = f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"
        if self.total:
            count += f" ({100 * self.n // max(1, self.total)} %)"
        parts = [f"{self.desc}: {count}"]
        if rate:
            parts.append(f"{rate:.3g} {self.unit}/s")
            if self.total and self.n < self.total:
                parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        log.info(", ".join(parts))


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, enabled: bool = True, leave: bool = True):
    """A tqdm bar in a terminal, plain periodic log lines otherwise, nothing when not ``enabled`` (e.g. on a
    process other than the main one)."""
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave)
    return LogProgress(iterable, total=total, desc=desc, unit=unit, initial=initial)
