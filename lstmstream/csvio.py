"""Streams on disk: NAB-style `timestamp,value` CSVs, `key,t,v` CSVs, and forecast CSVs.

Two input formats, told apart by the header:
  timestamp,value         one stream, keyed by the file's stem; ISO timestamps (UTC unless an
                          offset is given) or numbers
  key,t,v[,...]           many streams interleaved; extra columns are ignored, so a recording
                          made by `lstmstream record` replays as it is
A value cell holds a number, or numbers separated by `;` for a vector stream. A bad row (text,
NaN, a timestamp that does not increase for its stream) is reported with its line number and
skipped; the rest of the file is read.
"""

from __future__ import annotations

import csv
import heapq
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from .records import FIELDS, format_value, parse_value


@dataclass(frozen=True)
class Point:
    key: str
    t: float
    v: float | list[float]
    line: int


def parse_time(cell: str) -> float:
    """A number as it is, or an ISO date-time as epoch seconds (naive means UTC)."""
    try:
        t = float(cell)
    except ValueError:
        stamp = datetime.fromisoformat(cell.strip())
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        t = stamp.timestamp()
    if not math.isfinite(t):
        raise ValueError(f"not a finite time: {cell!r}")
    return t


def report_to_stderr(path: str, line: int, reason: str) -> None:
    print(f"{path}:{line}: skipped: {reason}", file=sys.stderr)


def read_points(
    path: str | Path,
    key: str | None = None,
    on_error: Callable[[str, int, str], None] = report_to_stderr,
    ordered: bool = True,
) -> list[Point]:
    """Every good point of a CSV file, in file order; bad rows go to on_error(path, line, reason).

    ordered=False keeps a point whose time does not increase (the row order is then the time
    order, as in recordings with local-time stamps repeated at a DST change).
    """
    path = str(path)
    points: list[Point] = []
    last_t: dict[str, float] = {}
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = [h.strip().lower() for h in next(rows, [])]
        if header[:2] == ["timestamp", "value"]:
            fixed_key, cols = key or Path(path).stem, (None, 0, 1)
        elif header[:3] == ["key", "t", "v"]:
            fixed_key, cols = key, (0, 1, 2)
        else:
            raise ValueError(f"{path}: expected a 'timestamp,value' or 'key,t,v' header, got {header}")
        width = max(c for c in cols if c is not None) + 1
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            try:
                if len(row) < width:
                    raise ValueError(f"{len(row)} columns")
                k = fixed_key or row[cols[0]]
                if not k:
                    raise ValueError("empty key")
                t, v = parse_time(row[cols[1]]), parse_value(row[cols[2]])
                if ordered and k in last_t and t <= last_t[k]:
                    raise ValueError(f"time {row[cols[1]]} does not increase for {k!r}")
            except ValueError as e:
                on_error(path, line, str(e))
                continue
            last_t[k] = t
            points.append(Point(k, t, v, line))
    return points


def merge_by_time(streams: Iterable[list[Point]]) -> Iterator[Point]:
    """Interleave several files' points by timestamp (stable for ties)."""
    return heapq.merge(*streams, key=lambda p: p.t)


class ForecastWriter:
    """Writes forecast records as `key,t,v,lo,hi,err,score,n` rows."""

    def __init__(self, out: TextIO):
        self.out = csv.writer(out, lineterminator="\n")
        self.out.writerow(("key", *FIELDS))

    def write(self, key: str, record: dict) -> None:
        self.out.writerow((key, *(format_value(record[f]) for f in FIELDS)))
