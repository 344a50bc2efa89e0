"""`lstmstream bench --e2e`: the real daemon through real sockets, for capacity planning.

The daemon is `lstmstream run` in a subprocess on ipc:// sockets in a temp dir. Synthetic points
for B streams go in through a lossless XPUB (XPUB_NODROP: a full queue makes the send wait, never
drop) and a SUB on the daemon's PUB matches every forecast to its point by (key, t). One thread
drives both sockets, so sending never starves receiving. Three phases:

1. warm-up: window + 2 points per stream (every stream created, every window full);
2. throughput: `points` per stream sent as fast as the daemon takes them; sustained points/s is
   points / (first send -> last forecast), and every point must get exactly one forecast;
3. latency: `rate` points/s for `duration` s, paced; each point's time from the moment it was
   actually sent to its forecast's arrival.

The daemon's CPU time (from /proc) over phase 2 gives points per daemon CPU-second, which does
not depend on what else the machine is doing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field

import msgpack
import numpy as np
import zmq

from . import wire
from .bench import T0, Config, bytes_per_stream, machine, run_bench, synthetic
from .demo import start_daemon
from .learner import Fleet
from .replay import Publisher

WAIT = 30.0  # seconds without progress before a phase gives up (and counts what is missing)
STEP = 60.0  # seconds between a stream's synthetic timestamps


@dataclass(frozen=True)
class Load:
    rate: float = 1000.0  # points/s offered in the latency phase
    duration: float = 5.0  # seconds of the latency phase


@dataclass
class Tally:
    """Forecasts of one phase matched to its points: index = round * streams + stream."""

    sent_at: np.ndarray  # perf_counter() at each send
    got_at: np.ndarray  # perf_counter() at each forecast; NaN until it arrives
    duplicates: int = 0
    stray: int = 0  # forecasts for no point of this phase

    @property
    def lost(self) -> int:
        return int(np.isnan(self.got_at).sum())


@dataclass
class Rig:
    """The daemon in a subprocess and the two sockets that talk to it."""

    proc: subprocess.Popen
    pub: Publisher
    sub: zmq.Socket
    keys: list[str]
    index: dict[bytes, int] = field(init=False)  # key -> stream number
    stats: dict = field(default_factory=dict)  # the daemon's last $stats

    def __post_init__(self) -> None:
        self.index = {k.encode(): i for i, k in enumerate(self.keys)}

    def cpu(self) -> float | None:
        """The daemon's CPU seconds so far (user + system), or None off Linux."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def run(self, ys: np.ndarray, first: int, rate: float | None = None) -> Tally:
        """Send rounds `first`.. of `ys` (rounds, streams), paced at `rate` points/s or flat out."""
        rounds, streams = ys.shape
        rng = np.random.default_rng(first)
        # Sensors take turns in no particular order: each round in its own shuffled order.
        order = np.concatenate([j * streams + rng.permutation(streams) for j in range(rounds)])
        msgs = [
            wire.encode_point(self.keys[k % streams], T0 + STEP * (first + k // streams), float(y))
            for k, y in zip(order.tolist(), ys.ravel()[order].tolist(), strict=True)
        ]
        n = len(msgs)
        tally = Tally(np.full(n, np.nan), np.full(n, np.nan))
        sock, done, i = self.pub.sock, 0, 0
        start = time.perf_counter()
        last_progress = start
        while done < n and time.perf_counter() - last_progress < WAIT:
            now = time.perf_counter()
            due = n if rate is None else min(n, int((now - start) * rate) + 1)
            while i < due:
                try:
                    sock.send_multipart(msgs[i], zmq.NOBLOCK)
                except zmq.Again:
                    break
                tally.sent_at[order[i]] = time.perf_counter()
                i += 1
            got = self.receive(tally, first, streams)
            done += got
            if got:
                last_progress = time.perf_counter()
            if not got and done < n:
                self.wait(rate, start, i, n, blocked=i < due)
        return tally

    def wait(self, rate: float | None, start: float, i: int, n: int, blocked: bool) -> None:
        """Until a forecast arrives, the next point is due, or (blocked) the daemon takes more."""
        due_in = 0.1 if rate is None or i >= n else max(0.0, start + i / rate - time.perf_counter())
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        if blocked:
            poller.register(self.pub.sock, zmq.POLLOUT)
        poller.poll(min(100, int(np.ceil(1e3 * due_in))))

    def receive(self, tally: Tally, first: int, streams: int) -> int:
        """Take every forecast that is waiting; returns how many were new for this phase."""
        new = 0
        while True:
            try:
                key, payload = self.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return new
            now = time.perf_counter()
            rec = msgpack.unpackb(payload)
            if key == wire.STATS_KEY.encode():
                self.stats = rec
                continue
            j = round((rec["t"] - T0) / STEP) - first
            i = self.index.get(key)
            if i is None or not 0 <= j < len(tally.got_at) // streams:
                tally.stray += 1
                continue
            k = j * streams + i
            if np.isnan(tally.got_at[k]):
                tally.got_at[k] = now
                new += 1
            else:
                tally.duplicates += 1

    def final_stats(self, learned: int) -> dict:
        """The first $stats that counts `learned` points (or the last one seen within WAIT)."""
        deadline = time.monotonic() + WAIT
        while self.stats.get("learned", 0) < learned and time.monotonic() < deadline:
            if self.sub.poll(100):
                key, payload = self.sub.recv_multipart()
                if key == wire.STATS_KEY.encode():
                    self.stats = msgpack.unpackb(payload)
        return self.stats


def start(cfg: Config, tmp: str) -> tuple[subprocess.Popen, str, str]:
    options = ["--stats-every", "0.5", "--hidden", str(cfg.hidden), "--window", str(cfg.window)]
    options += ["--dtype", cfg.dtype, "--seed", str(cfg.seed), "--max-streams", str(max(cfg.streams, 10_000))]
    return start_daemon(tmp, *options)


def connect(ctx: zmq.Context, proc: subprocess.Popen, forecasts: str) -> zmq.Socket:
    """A SUB on the daemon's PUB, returned once the first $stats shows it is up and subscribed."""
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(forecasts)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with status {proc.returncode}")
        if sub.poll(100) and sub.recv_multipart()[0] == wire.STATS_KEY.encode():
            return sub
    raise RuntimeError(f"the daemon did not start within {WAIT:g}s")


def percentiles(tally: Tally) -> dict[str, float | None]:
    lat = 1e3 * (tally.got_at - tally.sent_at)
    lat = lat[np.isfinite(lat)]
    if not len(lat):
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "max_ms": float(lat.max())}


def measure_e2e(cfg: Config, load: Load = Load()) -> dict:
    """Run the three phases against a fresh daemon; the figures as a flat dict."""
    warmup = cfg.window + 2
    paced = max(1, int(np.ceil(load.rate * load.duration / cfg.streams)))
    ys = synthetic(cfg, warmup + cfg.points + paced)
    keys = [f"sensor-{i}" for i in range(cfg.streams)]
    ctx = zmq.Context()
    with tempfile.TemporaryDirectory(prefix="lstmstream-bench-") as tmp:
        proc, points, forecasts = start(cfg, tmp)
        try:
            rig = Rig(proc, Publisher(">" + points, WAIT, ctx), connect(ctx, proc, forecasts), keys)
            rig.pub.wait_for_subscriber()
            warm = rig.run(ys[:warmup], 0)
            cpu0 = rig.cpu()
            flat = rig.run(ys[warmup : warmup + cfg.points], warmup)
            cpu1 = rig.cpu()
            timed = rig.run(ys[warmup + cfg.points :], warmup + cfg.points, load.rate)
            stats = rig.final_stats(cfg.streams * (warmup + cfg.points + paced))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(WAIT)
            ctx.destroy(linger=0)
    cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    return report(cfg, load, (warm, flat, timed), cpu, stats)


def report(
    cfg: Config, load: Load, tallies: tuple[Tally, Tally, Tally], cpu: float | None, stats: dict
) -> dict:
    """`tallies`: of the warm-up, the flat-out and the paced phase; `cpu`: the daemon's in the second."""
    _, flat, timed = tallies
    n = len(flat.sent_at)
    got = n - flat.lost
    elapsed = float(np.nanmax(flat.got_at) - np.nanmin(flat.sent_at)) if got else 0.0
    span = float(np.nanmax(timed.sent_at) - np.nanmin(timed.sent_at)) if len(timed.sent_at) > 1 else 0.0
    fleet = Fleet(cfg.settings(), size=1)
    fleet.add("sensor-0")
    return {
        **{k: v for k, v in asdict(cfg).items() if k not in ("repeat", "recompute")},
        "mode": "e2e",
        "points_per_s": got / elapsed if got else 0.0,
        "us_per_point": 1e6 * elapsed / got if got else None,
        "daemon_cpu_points_per_s": n / cpu if cpu else None,
        "bytes_per_stream": bytes_per_stream(fleet),
        "throughput_points": n,
        "lost": sum(t.lost for t in tallies),
        "duplicates": sum(t.duplicates + t.stray for t in tallies),
        "rejected": sum(stats.get("rejected", {}).values()),
        "rate": load.rate,
        "offered_rate": (len(timed.sent_at) - 1) / span if span else None,
        "latency_points": len(timed.sent_at),
        **percentiles(timed),
        "machine": machine(),
    }


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f} ms"


def render(res: dict) -> str:
    loss = (
        "zero loss"
        if not (res["lost"] or res["duplicates"] or res["rejected"])
        else f"LOSS: {res['lost']} lost, {res['duplicates']} duplicate or stray, {res['rejected']} rejected"
    )
    per_core = res["daemon_cpu_points_per_s"]
    sustained = res["points_per_s"]
    lines = [
        f"lstmstream bench --e2e: the daemon through real sockets (ipc://), {res['streams']:,} streams, "
        f"hidden {res['hidden']}, window {res['window']}, {res['dtype']}",
        f"  machine     {res['machine']}",
        f"  throughput  {sustained:,.0f} points/s sustained, {loss} "
        f"({res['throughput_points']:,} points sent flat out, each checked for its one forecast)",
        "  per core    "
        + (f"{per_core:,.0f} points per daemon CPU-second (flat out)" if per_core else "(no CPU time here)"),
        f"  latency     at {res['offered_rate'] or 0:,.0f} points/s ({res['latency_points']:,} points), "
        f"point sent -> forecast received: p50 {_ms(res['p50_ms'])}, p95 {_ms(res['p95_ms'])}, "
        f"p99 {_ms(res['p99_ms'])}, max {_ms(res['max_ms'])}",
        f"  memory      {res['bytes_per_stream']:,} bytes per stream "
        f"({res['bytes_per_stream'] * res['streams'] / 2**20:,.1f} MiB for these {res['streams']:,})",
        f"  capacity    one daemon keeps up with ~{sustained:,.0f} sensors at 1 Hz "
        f"(~{sustained * 60:,.0f} at one point a minute); run one shard per core to scale out",
    ]
    return "\n".join(lines)


def run_e2e(cfg: Config, load: Load, as_json: bool, echo=print) -> dict:
    return run_bench(cfg, as_json, echo, lambda c: measure_e2e(c, load), render)
