"""Points and forecasts as plain Python values: what the wire, CSV files and `tail` carry.

A forecast record is {"t", "v", "lo", "hi", "err", "score", "n"}: t of the point just learned,
the forecast of the next value and its interval, the error of the forecast for this point and
its anomaly score (None on a stream's first point), and the points learned on the stream.
Values are floats for a scalar stream and lists of floats for a vector stream; never NumPy
scalars, so msgpack and json take them as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .learner import Step

FIELDS = ("t", "v", "lo", "hi", "err", "score", "n")


def _values(a: np.ndarray) -> list:
    """(B, D) -> B floats (D = 1) or B lists of floats; tolist() converts a column in one call."""
    return a[:, 0].tolist() if a.shape[1] == 1 else a.tolist()


def _plain_t(t: float) -> int | float:
    return int(t) if float(t).is_integer() and abs(t) < 2**53 else float(t)


def forecasts(step: Step) -> Iterator[dict]:
    """One record per stream in `step`, in the order of its rows."""
    first = np.isnan(step.score).tolist()
    v, lo, hi, err = (_values(a) for a in (step.v, step.lo, step.hi, step.err))
    columns = zip(step.t.tolist(), step.score.tolist(), step.n.tolist(), strict=True)
    for j, (t, score, n) in enumerate(columns):
        yield {
            "t": _plain_t(t),
            "v": v[j],
            "lo": lo[j],
            "hi": hi[j],
            "err": None if first[j] else err[j],
            "score": None if first[j] else score,
            "n": n,
        }


def format_value(v: float | list[float] | None) -> str:
    """A CSV cell: empty for None, `;`-separated for a vector, repr-exact floats."""
    if v is None:
        return ""
    if isinstance(v, list):
        return ";".join(repr(float(x)) for x in v)
    return repr(v) if isinstance(v, float) else str(v)


def parse_value(cell: str) -> float | list[float]:
    """The inverse of format_value for a value cell; raises ValueError on anything else."""
    parts = cell.split(";")
    values = [float(p) for p in parts]
    if not all(math.isfinite(x) for x in values):
        raise ValueError(f"not a finite number: {cell!r}")
    return values[0] if len(values) == 1 else values
