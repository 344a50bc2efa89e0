"""What one TBPTT update costs in NumPy's kernels alone, next to what a whole update costs.

    python benchmarks/kernels.py [--hidden 32] [--window 16]

Times, on this machine and one thread, the operations no NumPy implementation of the update can
avoid: per time step the gate matmul (k+1 forward, k backward), tanh of the 4H gates and the H
cells (k+1 steps), and an Adam step over the weights; for one stream also the cost of a NumPy call
itself. Their sum is a floor for this algorithm in NumPy; the last lines compare it with a whole
update (`Fleet.learn` for 1000 float32 streams in blocks of 64, `Forecaster.learn_one` float64).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lstmstream.bench import Config, synthetic
from lstmstream.learner import Fleet, Forecaster, Settings
from lstmstream.optim import Adam


def best(fn, number: int, repeat: int = 7) -> float:
    """Best seconds per call of fn, CPU time (a busy machine does not inflate it)."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(number):
            fn()
        times.append((time.process_time() - t0) / number)
    return min(times)


def kernels(B: int, I: int, H: int, dtype) -> dict[str, float]:
    """Seconds per stream: one gate matmul, tanh of 4H + H values, one Adam step."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((B, I + 1 + H, 4 * H)).astype(dtype)
    x = rng.standard_normal((B, 1, I + 1 + H)).astype(dtype)
    z = np.empty((B, 1, 4 * H), dtype)
    gates, cells = rng.standard_normal((B, 4 * H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)
    if B == 1:
        W1, x1, z1, g1, c1 = W[0], x[0, 0], z[0, 0], gates[0], cells[0]
        mm = best(lambda: np.dot(x1, W1, z1), 2000)
        tanh = best(lambda: (np.tanh(g1, g1), np.tanh(c1, c1)), 2000)
    else:
        mm = best(lambda: np.matmul(x, W, z), 100) / B
        tanh = best(lambda: (np.tanh(gates, gates), np.tanh(cells, cells)), 100) / B
    P = W[0].size + H + 1
    opt = Adam(lr=5e-3, max_norm=1.0, decay=1000.0, min_lr=5e-3 / 3)
    w, state = rng.standard_normal((B, P)).astype(dtype), opt.init_state(B, P, dtype)
    g0, g = (rng.standard_normal((B, P)) * 1e-3).astype(dtype), np.empty((B, P), dtype)
    copy = best(lambda: np.copyto(g, g0), 200)
    adam = (best(lambda: (np.copyto(g, g0), opt.step(w, g, state)), 200) - copy) / B
    return {"matmul": mm, "tanh": tanh, "adam": adam}


def per_call() -> float:
    """Seconds of one NumPy call on two short vectors: a single stream's unit of cost."""
    a, b, out = np.ones(32), np.ones(32), np.empty(32)
    return best(lambda: np.multiply(a, b, out), 20000)


def fleet_update(H: int, k: int, streams: int = 1000, rounds: int = 10) -> float:
    """Seconds per point of `Fleet.learn` on `streams` float32 streams (as `lstmstream bench`)."""
    fleet = Fleet(Settings(hidden=H, window=k, dtype="float32"))
    rows = np.array([fleet.add(f"sensor-{i}") for i in range(streams)])
    it = iter(synthetic(Config(streams=streams), k + 2 + rounds * 4))
    for _ in range(k + 2):
        fleet.learn(rows, next(it)[:, None], np.zeros(streams))
    return best(lambda: fleet.learn(rows, next(it)[:, None], np.zeros(streams)), rounds, 3) / streams


def single_update(H: int, k: int, points: int = 300) -> float:
    """Seconds per point of `Forecaster.learn_one` + `forecast`, float64, seasons off (2 inputs)."""
    f = Forecaster(hidden_size=H, window=k, dtype="float64", season="off")
    ys = iter(np.sin(np.arange(100_000) * 0.3).tolist())
    for _ in range(k + 2):
        f.learn_one(next(ys))
    return best(lambda: (f.learn_one(next(ys)), f.forecast()), points, 5)


def row(name: str, seconds: float, times: int) -> float:
    """Print one kernel's line; returns its cost per point."""
    print(f"  {name:16s} {seconds * 1e6:6.2f} µs x {times:3d} = {seconds * times * 1e6:6.1f} µs")
    return seconds * times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--window", type=int, default=16)
    a = ap.parse_args()
    H, k, steps = a.hidden, a.window, 2 * a.window + 1

    fleet = kernels(64, 2, H, np.float32)
    print(f"1000 float32 streams in blocks of 64, H={H} k={k}, per stream and point:")
    floor = row("gate matmul", fleet["matmul"], steps) + row("tanh of 5H", fleet["tanh"], k + 1)
    floor += row("Adam step", fleet["adam"], 1)
    real = fleet_update(H, k)
    print(f"  kernels alone    {floor * 1e6:6.1f} µs: {1 / floor:,.0f} points/s at most")
    print(f"  Fleet.learn      {real * 1e6:6.1f} µs: {1 / real:,.0f} points/s, kernels {floor / real:.0%}")

    one = kernels(1, 2, H, np.float64)
    calls = (k + 1) * 6 + k * 4  # lstm.run's and backprop's elementwise calls per step, beside the above
    print(f"one float64 stream, H={H} k={k}, per point:")
    floor = row("gate matmul", one["matmul"], steps) + row("tanh of 5H", one["tanh"], k + 1)
    floor += row("Adam step", one["adam"], 1) + row("other calls", per_call(), calls)
    real = single_update(H, k)
    print(f"  the recurrence   {floor * 1e6:6.1f} µs")
    print(f"  learn_one        {real * 1e6:6.1f} µs; the recurrence is {floor / real:.0%}")


if __name__ == "__main__":
    main()
