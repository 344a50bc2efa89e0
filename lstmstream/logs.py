"""Logging to stderr, one line per record; journald-friendly under systemd.

When $JOURNAL_STREAM is set (stderr goes to the journal) a line carries no timestamp (the
journal adds its own) and starts with an sd-daemon `<N>` priority prefix, so `journalctl -p`
filters by level.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable

PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class OneLine(logging.Formatter):
    """Newlines (in messages and tracebacks) escaped, so one record is one line."""

    def __init__(self, journal: bool):
        fmt = (
            "%(name)s %(levelname)s %(message)s"
            if journal
            else "%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        super().__init__(fmt)
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record).replace("\n", "\\n")
        return f"<{PRIORITY.get(record.levelno, 6)}>{line}" if self.journal else line


def setup(level: str = "info") -> None:
    """Send the `lstmstream` loggers to stderr at `level` (replacing any earlier setup)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLine(journal=bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger("lstmstream")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class Throttle:
    """Rate-limited warnings by reason: the first `first` of each reason are logged as they
    come, later ones only counted, and `flush()` (called periodically) logs one summary line
    per `every` seconds with the counts it held back."""

    def __init__(
        self,
        log: logging.Logger,
        first: int = 5,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.log, self.first, self.every, self.clock = log, first, every, clock
        self.seen: Counter[str] = Counter()
        self.held: Counter[str] = Counter()
        self.last = clock()

    def warn(self, reason: str, message: str) -> None:
        self.seen[reason] += 1
        if self.seen[reason] <= self.first:
            self.log.warning("rejected (%s): %s", reason, message)
            if self.seen[reason] == self.first:
                self.log.warning(
                    "rejected (%s): further ones are counted, summarised every %gs", reason, self.every
                )
        else:
            self.held[reason] += 1

    def flush(self, force: bool = False) -> None:
        now = self.clock()
        if not (force or now - self.last >= self.every):
            return
        self.last = now
        if self.held:
            counts = " ".join(f"{r}={n}" for r, n in sorted(self.held.items()))
            self.log.warning("rejected since the last summary (not logged one by one): %s", counts)
            self.held.clear()
