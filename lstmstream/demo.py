"""`lstmstream demo`: the daemon on loopback, a synthetic sensor feed, live forecasts, a summary.

The daemon is the real `lstmstream run` in a subprocess, on ipc:// sockets in a temp dir;
the feed goes in through `replay` (lossless) in a thread while the main thread reads the
forecasts, prints some live, and scores them at the end: MAE against the naive last-value
forecast, coverage of the intervals, and whether the injected spike got the highest score.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import numpy as np
import zmq

from . import wire
from .feed import Feed, sensor_feed
from .replay import replay
from .tail import alert, line

PER_DAY = 48


@dataclass(frozen=True)
class Summary:
    key: str
    points: int
    mae: float
    naive: float
    coverage: float
    top_score: float
    top_t: float
    second_score: float


def start_daemon(tmp: str, *options: str) -> tuple[subprocess.Popen, str, str]:
    """`lstmstream run` with `options` in a subprocess, bound to ipc:// sockets in the directory
    `tmp`; returns the process and its points and forecasts endpoints."""
    points, forecasts = f"ipc://{tmp}/points", f"ipc://{tmp}/forecasts"
    cmd = [sys.executable, "-c", "from lstmstream.cli import main; main()", "run"]
    cmd += ["--sub", "@" + points, "--pub", "@" + forecasts, "--log-level", "warning", *options]
    return subprocess.Popen(cmd), points, forecasts


def wait_ready(sock: zmq.Socket, proc: subprocess.Popen, deadline: float) -> None:
    """Until the first $stats arrives: then the daemon is up and our subscription is in place."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with status {proc.returncode}")
        if sock.poll(100) and sock.recv_multipart()[0] == wire.STATS_KEY.encode():
            return
    raise RuntimeError("the daemon did not start in time")


def collect(sock: zmq.Socket, expected: int, deadline: float, out: TextIO) -> dict[str, list[dict]]:
    """Forecasts by key until `expected` arrived; prints one a day per stream and every alert."""
    got: dict[str, list[dict]] = defaultdict(list)
    total = 0
    while total < expected and time.monotonic() < deadline:
        if not sock.poll(100):
            continue
        key_b, payload = sock.recv_multipart()
        key = key_b.decode()
        if key == wire.STATS_KEY:
            continue
        rec = wire.unpack(payload)
        got[key].append(rec)
        total += 1
        if rec["n"] % (2 * PER_DAY) == 0 or alert(rec):
            print(f"{_when(rec['t'])}  {line(key, rec)}", file=out, flush=True)
    return got


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M")


def summarise(key: str, ys: list[float], ts: list[float], recs: list[dict]) -> Summary:
    """Scores from the second day on: forecast for point j is recs[j-1]."""
    y = np.array(ys)
    f = np.array([r["v"] for r in recs])
    lo = np.array([r["lo"] for r in recs])
    hi = np.array([r["hi"] for r in recs])
    j = np.arange(PER_DAY, min(len(y), len(recs)))
    covered = (lo[j - 1] <= y[j]) & (y[j] <= hi[j - 1])
    scores = np.array([r["score"] for r in recs[PER_DAY:]], dtype=float)
    order = np.argsort(scores)[::-1]
    return Summary(
        key,
        len(recs),
        float(np.mean(np.abs(y[j] - f[j - 1]))),
        float(np.mean(np.abs(y[j] - y[j - 1]))),
        float(np.mean(covered)),
        float(scores[order[0]]),
        ts[PER_DAY + order[0]],
        float(scores[order[1]]),
    )


def report(feed: Feed, got: dict[str, list[dict]], out: TextIO) -> list[Summary]:
    values: dict[str, list] = defaultdict(list)
    for p in feed.points:
        values[p.key].append(p)
    missing = len(feed.points) - sum(map(len, got.values()))
    if missing or any(len(got.get(k, [])) < 2 * PER_DAY for k in values):
        raise RuntimeError(f"{missing} of {len(feed.points)} forecasts did not arrive in time")
    rows = [summarise(k, [p.v for p in ps], [p.t for p in ps], got[k]) for k, ps in values.items()]
    head = f"{'stream':<24} {'points':>6} {'MAE':>8} {'naive':>8} {'ratio':>6} {'in interval':>11}"
    print(f"\n{head}  top score", file=out)
    for s in rows:
        cells = f"{s.key:<24} {s.points:>6} {s.mae:>8.4g} {s.naive:>8.4g} {s.mae / s.naive:>6.2f}"
        print(f"{cells} {s.coverage:>11.1%}  {s.top_score:.1f} at {_when(s.top_t)}", file=out)
    spike = next(s for s in rows if s.key == feed.spike_key)
    flagged = spike.top_t == feed.spike_t
    print(
        f"\nspike injected into {feed.spike_key} at {_when(feed.spike_t)}: "
        + (
            f"flagged, score {spike.top_score:.1f} (the stream's next highest: {spike.second_score:.1f})"
            if flagged
            else f"NOT flagged (top score {spike.top_score:.1f} at {_when(spike.top_t)})"
        ),
        file=out,
    )
    print(
        "MAE: mean absolute error of the one-step forecasts after the first day; naive: of the last value.",
        file=out,
    )
    return rows


def demo(out: TextIO = sys.stdout, days: int = 14, timeout: float = 50.0) -> list[Summary]:
    feed = sensor_feed(days, PER_DAY)
    deadline = time.monotonic() + timeout
    ctx = zmq.Context.instance()
    errors: list[BaseException] = []
    with tempfile.TemporaryDirectory(prefix="lstmstream-demo-") as tmp:
        proc, points, forecasts = start_daemon(tmp, "--stats-every", "0.2")
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(forecasts)
        try:
            wait_ready(sock, proc, deadline)
            print(
                f"daemon up (pid {proc.pid}); replaying {len(feed.points)} points from "
                f"{len({p.key for p in feed.points})} sensors, {days} days\n",
                file=out,
                flush=True,
            )
            sender = threading.Thread(target=_send, args=(feed, ">" + points, ctx, errors), daemon=True)
            sender.start()
            got = collect(sock, len(feed.points), deadline, out)
            sender.join(max(0.0, deadline - time.monotonic()))
        finally:
            sock.close(linger=0)
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    if errors:
        raise RuntimeError(f"replay failed: {errors[0]}")
    return report(feed, got, out)


def _send(feed: Feed, spec: str, ctx: zmq.Context, errors: list[BaseException]) -> None:
    try:
        replay(feed.points, spec, timeout=20.0, ctx=ctx)
    except Exception as e:  # reported by the main thread
        errors.append(e)
