"""Prequential (test-then-train) evaluation of the online learner on recorded streams.

Each point is first forecast, then learned, exactly as the daemon does: streams go through
`Fleet.learn`, one fleet per point size, in rounds (the i-th point of every stream in one call),
which is the same maths per stream as one call per point, only faster. The first `warmup`
points of a stream are learned but not scored.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import click
import numpy as np

from . import csvio, records
from .learner import Fleet, Settings
from .plot import plot_forecasts
from .season import span

PROGRESS_FROM = 20_000  # points; shorter runs finish before a bar is worth drawing


@dataclass
class Stream:
    key: str
    t: np.ndarray  # (n,)
    y: np.ndarray  # (n, size)


def load(paths: Iterable[str | Path], on_error=csvio.report_to_stderr) -> list[Stream]:
    """Every stream in the files, in order of first appearance; bad rows go to on_error.

    A file's row order is its time order: a repeated or backward timestamp (local time at a DST
    change, in real recordings) does not drop the point.
    """
    points: dict[str, list[csvio.Point]] = {}
    owner: dict[str, str] = {}
    for path in paths:
        for p in csvio.read_points(path, on_error=on_error, ordered=False):
            if owner.setdefault(p.key, str(path)) != str(path):
                raise ValueError(f"stream {p.key!r} is in both {owner[p.key]} and {path}")
            points.setdefault(p.key, []).append(p)
    streams = []
    for key, pts in points.items():
        size = len(np.atleast_1d(pts[0].v))
        t, y = [], []
        for p in pts:
            v = np.atleast_1d(p.v)
            if len(v) != size:
                on_error(owner[key], p.line, f"{len(v)} values, stream {key!r} has {size}")
                continue
            t.append(p.t)
            y.append(v)
        streams.append(Stream(key, np.array(t, np.float64), np.array(y, np.float64)))
    return streams


@dataclass
class Tally:
    """Running error sums of a group of streams (one entry per stream)."""

    count: int
    scored: np.ndarray = field(init=False)
    abs_err: np.ndarray = field(init=False)
    sq_err: np.ndarray = field(init=False)
    abs_naive: np.ndarray = field(init=False)
    sq_naive: np.ndarray = field(init=False)
    covered: np.ndarray = field(init=False)

    def __post_init__(self):
        for n in ("scored", "abs_err", "sq_err", "abs_naive", "sq_naive", "covered"):
            setattr(self, n, np.zeros(self.count))

    def add(self, j: np.ndarray, err: np.ndarray, naive: np.ndarray, inside: np.ndarray) -> None:
        """Scored points of streams j (distinct): errors (B, size), naive errors, interval hits (B,)."""
        self.scored[j] += 1
        self.abs_err[j] += np.abs(err).mean(axis=1)
        self.sq_err[j] += (err * err).mean(axis=1)
        self.abs_naive[j] += np.abs(naive).mean(axis=1)
        self.sq_naive[j] += (naive * naive).mean(axis=1)
        self.covered[j] += inside


@dataclass
class Trace:
    """Every forecast of a group of streams, kept for --plot: v/lo/hi (streams, points, size)."""

    v: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def evaluate_group(
    streams: list[Stream],
    settings: Settings,
    warmup: int,
    writer: csvio.ForecastWriter | None = None,
    trace: Trace | None = None,
    progress=None,
) -> tuple[Tally, float, list[dict]]:
    """Run same-size streams through one fleet in rounds.

    Returns the tally, the seconds spent learning, and what the fleet detected for each stream.
    """
    size = streams[0].y.shape[1]
    fleet = Fleet(settings, size)
    rows = np.array([fleet.add(s.key) for s in streams], np.int64)
    lengths = np.array([len(s.t) for s in streams])
    Y = np.zeros((len(streams), lengths.max(), size))
    T = np.zeros((len(streams), lengths.max()))
    for m, s in enumerate(streams):
        Y[m, : lengths[m]], T[m, : lengths[m]] = s.y, s.t
    tally = Tally(len(streams))
    lo = np.full((len(streams), size), -np.inf)
    hi = np.full((len(streams), size), np.inf)
    secs = 0.0
    for i in range(int(lengths.max())):
        j = np.flatnonzero(lengths > i)
        ys, ts = Y[j, i], T[j, i]
        start = time.perf_counter()
        step = fleet.learn(rows[j], ys, ts)
        secs += time.perf_counter() - start
        if i >= max(warmup, 1):
            naive = ys - Y[j, i - 1]
            inside = ((lo[j] <= ys) & (ys <= hi[j])).all(axis=1)
            tally.add(j, step.err, naive, inside)
        lo[j], hi[j] = step.lo, step.hi
        if writer is not None:
            for m, rec in zip(j, records.forecasts(step), strict=True):
                writer.write(streams[m].key, rec)
        if trace is not None:
            trace.v[j, i], trace.lo[j, i], trace.hi[j, i] = step.v, step.lo, step.hi
        if progress is not None:
            progress.update(len(j))
    return tally, secs, [fleet.describe(r) for r in rows]


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def summarise(streams: list[Stream], tally: Tally, secs: float, detected: list[dict]) -> dict[str, dict]:
    """Per-stream figures of one group, by key."""
    out = {}
    points = sum(len(s.t) for s in streams)
    for m, s in enumerate(streams):
        n = tally.scored[m]
        mae, naive = _ratio(tally.abs_err[m], n), _ratio(tally.abs_naive[m], n)
        out[s.key] = {
            "points": len(s.t),
            "scored": int(n),
            "size": s.y.shape[1],
            "mae": mae,
            "rmse": math.sqrt(_ratio(tally.sq_err[m], n)),
            "naive_mae": naive,
            "naive_rmse": math.sqrt(_ratio(tally.sq_naive[m], n)),
            "ratio": _ratio(mae, naive),
            "coverage": _ratio(tally.covered[m], n),
            "us_per_point": 1e6 * secs / points,
            **detected[m],
        }
    return out


def overall(per_stream: dict[str, dict], secs: float) -> dict:
    """Across streams: the geometric mean and worst of the MAE ratios, pooled coverage and cost."""
    ratios = {k: r["ratio"] for k, r in per_stream.items() if math.isfinite(r["ratio"])}
    scored = sum(r["scored"] for r in per_stream.values())
    points = sum(r["points"] for r in per_stream.values())
    covered = sum(r["coverage"] * r["scored"] for r in per_stream.values() if r["scored"])
    worst = max(ratios, key=ratios.get) if ratios else None
    return {
        "streams": len(per_stream),
        "points": points,
        "scored": scored,
        "gmean_ratio": math.exp(np.mean(np.log(np.maximum(list(ratios.values()), 1e-12))))
        if ratios
        else math.nan,
        "worst_ratio": ratios[worst] if worst else math.nan,
        "worst_stream": worst,
        "coverage": _ratio(covered, scored),
        "us_per_point": 1e6 * secs / points if points else math.nan,
    }


def evaluate(
    paths: list[str],
    settings: Settings,
    warmup: int = 50,
    forecasts: TextIO | None = None,
    plot: str | None = None,
    progress: bool = True,
) -> dict:
    """The whole `eval`: {"settings", "warmup", "streams": {key: figures}, "overall": figures}."""
    streams = load(paths)
    if not streams:
        raise ValueError("no points to evaluate")
    writer = csvio.ForecastWriter(forecasts) if forecasts is not None else None
    groups: dict[int, list[Stream]] = {}
    for s in streams:
        groups.setdefault(s.y.shape[1], []).append(s)
    total = sum(len(s.t) for s in streams)
    bar = (
        click.progressbar(length=total, label="eval", file=sys.stderr)
        if progress and total >= PROGRESS_FROM
        else None
    )
    per_stream, secs, traces = {}, 0.0, {}
    with bar if bar is not None else contextlib.nullcontext():
        for size, group in groups.items():
            trace = _empty_trace(group, size) if plot else None
            tally, s, detected = evaluate_group(group, settings, warmup, writer, trace, bar)
            per_stream.update(summarise(group, tally, s, detected))
            secs += s
            traces[size] = trace
    result = {
        "settings": settings.to_dict(),
        "warmup": warmup,
        "streams": {s.key: per_stream[s.key] for s in streams},
        "overall": overall(per_stream, secs),
    }
    if plot:
        plot_forecasts(plot, groups, traces)
    return result


def _empty_trace(group: list[Stream], size: int) -> Trace:
    shape = (len(group), max(len(s.t) for s in group), size)
    return Trace(np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan))


def _num(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"


def table(result: dict) -> str:
    """The human-readable report: one line per stream, then the overall line."""
    head = f"{'stream':40s} {'points':>7s} {'MAE':>10s} {'RMSE':>10s} {'naive MAE':>10s} {'naive RMSE':>10s}"
    head += f" {'ratio':>6s} {'cover':>6s} {'µs/pt':>7s}"
    lines = [head]
    for key, r in result["streams"].items():
        lines.append(
            f"{key[:40]:40s} {r['points']:7d} {_num(r['mae']):>10s} {_num(r['rmse']):>10s}"
            f" {_num(r['naive_mae']):>10s} {_num(r['naive_rmse']):>10s} {_ratio_cell(r['ratio'])}"
            f" {_pct(r['coverage'])} {r['us_per_point']:7.0f}"
        )
    lines.append(f"{'stream':40s} {'interval':>9s} {'seasons (span/slots/gain)':>28s}  inputs")
    for key, r in result["streams"].items():
        lines.append(f"{key[:40]:40s} {span(r['interval']):>9s} {_seasons(r):>28s}  {','.join(r['inputs'])}")
    o = result["overall"]
    lines.append(
        f"overall: {o['streams']} streams, {o['points']} points ({o['scored']} scored after a warm-up of "
        f"{result['warmup']}); MAE/naive geometric mean {_num(o['gmean_ratio'])}, worst "
        f"{_num(o['worst_ratio'])} ({o['worst_stream']}); coverage {_pct(o['coverage']).strip()} "
        f"(nominal {result['settings']['interval']:.0%}); {o['us_per_point']:.0f} µs/point"
    )
    return "\n".join(lines)


def _seasons(r: dict) -> str:
    """Each season as span/slots/gain, e.g. '1d/288/0.91 1w/288/0.40'."""
    parts = zip(r["seasons"], r["season_slots"], r["season_gain"], strict=True)
    return " ".join(f"{span(p)}/{n}/{g:.2f}" for p, n, g in parts) or "-"


def _ratio_cell(x: float) -> str:
    return f"{'-':>6s}" if not math.isfinite(x) else f"{x:6.3f}"


def _pct(x: float) -> str:
    return f"{'-':>6s}" if not math.isfinite(x) else f"{x:6.1%}"


def jsonable(x):
    """NaN and infinities as null, so the JSON line is strict JSON."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def run_eval(paths: list[str], settings: Settings, warmup: int, forecasts, as_json: bool, plot) -> None:
    """The `eval` command: the table on stdout, then (with --json) the result as one JSON line."""
    try:
        result = evaluate(paths, settings, warmup, forecasts, plot)
    except (ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(table(result))
    if as_json:
        click.echo(json.dumps(jsonable(result)))
