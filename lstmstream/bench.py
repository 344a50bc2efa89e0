"""`lstmstream bench`: how many points per second one core learns, for capacity planning.

It drives `Fleet.learn` (the daemon's own learner code path) over synthetic streams, every
stream receiving one point per round, and reports the best of a few repeats: points/s,
µs per point, bytes of state per stream, and how many 1 Hz sensors that is for one core.
Per-core figures divide by the process CPU time, so a busy machine or extra BLAS threads do
not inflate them.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass

import numpy as np

from .learner import Fleet, Settings

T0 = 1_700_000_000.0  # synthetic timestamps start here (Unix seconds)


@dataclass(frozen=True)
class Config:
    streams: int = 1000
    hidden: int = 32
    window: int = 16
    points: int = 20
    dtype: str = "float32"
    repeat: int = 3
    seed: int = 0
    recompute: bool = True

    def settings(self) -> Settings:
        """The learner's settings for these figures (the rest at their defaults)."""
        return Settings(hidden=self.hidden, window=self.window, seed=self.seed, dtype=self.dtype)


def synthetic(cfg: Config, rounds: int) -> np.ndarray:
    """(rounds, streams) of noisy daily-ish cycles, each stream with its own phase and scale."""
    rng = np.random.default_rng(cfg.seed)
    t = np.arange(rounds)[:, None]
    phase, scale = rng.uniform(0, 2 * np.pi, cfg.streams), rng.uniform(1, 100, cfg.streams)
    return scale * (np.sin(2 * np.pi * t / 48 + phase) + 0.1 * rng.standard_normal((rounds, cfg.streams)))


def bytes_per_stream(fleet: Fleet) -> int:
    """Bytes of the per-stream arrays a stream actually needs (one row of each)."""
    return int(sum(a.nbytes // max(len(a), 1) for a in fleet.arrays().values()))


def measure_fleet(cfg: Config) -> dict:
    """Time `Fleet.learn` on `cfg.streams` synthetic streams; best of `cfg.repeat` runs."""
    warmup = cfg.window + 2  # past the first point (no update) and a full window
    ys = synthetic(cfg, warmup + cfg.points * cfg.repeat)
    fleet = Fleet(cfg.settings(), size=1, recompute=cfg.recompute)
    rows = np.array([fleet.add(f"sensor-{i}") for i in range(cfg.streams)])
    ts = T0 + 60.0 * np.arange(len(ys))  # one point a minute
    for j in range(warmup):
        fleet.learn(rows, ys[j, :, None], np.full(cfg.streams, ts[j]))
    best_wall, best_cpu = np.inf, np.inf
    for r in range(cfg.repeat):
        first = warmup + r * cfg.points
        wall, cpu = time.perf_counter(), time.process_time()
        for j in range(first, first + cfg.points):
            fleet.learn(rows, ys[j, :, None], np.full(cfg.streams, ts[j]))
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    points = cfg.streams * cfg.points
    per_core = points / max(best_cpu, 1e-9)
    return {
        **asdict(cfg),
        "mode": "fleet",
        "points_per_s": points / best_wall,
        "us_per_point": best_wall / points * 1e6,
        "cpu_points_per_s": per_core,
        "bytes_per_stream": bytes_per_stream(fleet),
        "sensors_1hz_per_core": round(per_core),
        "machine": machine(),
    }


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, NumPy {np.__version__}"


def render(res: dict) -> str:
    """The human-readable report."""
    kib = res["bytes_per_stream"] / 1024
    rate = res["sensors_1hz_per_core"]
    lines = [
        f"lstmstream bench: {res['streams']:,} stream{'s' * (res['streams'] > 1)}, "
        f"hidden {res['hidden']}, window {res['window']}, {res['dtype']}, "
        f"{'' if res['recompute'] else 'kept activations, '}"
        f"{res['points']} points per stream (best of {res['repeat']})",
        f"  machine     {res['machine']}",
        f"  throughput  {res['points_per_s']:,.0f} points/s   ({res['us_per_point']:,.1f} µs per point)",
        f"  per core    {res['cpu_points_per_s']:,.0f} points per CPU-second",
        f"  memory      {res['bytes_per_stream']:,} bytes per stream ({kib:,.1f} KiB; "
        f"{res['bytes_per_stream'] * res['streams'] / 2**20:,.1f} MiB for these {res['streams']:,})",
        f"  capacity    one core keeps up with ~{rate:,} sensors at 1 Hz "
        f"(~{rate // 10:,} at 10 Hz, ~{rate * 60:,} at one point a minute)",
    ]
    return "\n".join(lines)


def run_bench(cfg: Config, as_json: bool, echo=print, measure=measure_fleet, show=render) -> dict:
    """Measure (the learner alone by default), report with `show`, then (`as_json`) one JSON line."""
    res = measure(cfg)
    echo(show(res))
    if as_json:
        echo(json.dumps(res))
    return res
