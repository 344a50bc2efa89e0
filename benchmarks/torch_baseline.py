"""PyTorch baselines for issue 6's targets, measured next to lstmstream in the same run.

Run it in a separate venv (torch is not a dependency of lstmstream):

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
    /tmp/torchvenv/bin/python benchmarks/torch_baseline.py [--streams 1000] [--points 20]

One thread throughout. The same update as lstmstream's: per point, a forward over the window of
k inputs from the state before it, MSE on the last output, backward, per-stream gradient clipping
to norm 1, Adam, then one step forward to advance the state.
  single:  nn.LSTM (or LSTMCell) + nn.Linear + Adam, float64, one stream, eager.
  batched: B streams with their own stacked weights, gates by baddbmm, float32.
lstmstream is imported from this checkout (numpy is the only other requirement).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

H, K, I = 32, 16, 2


def torch_single(points: int, cell: bool):
    """A loop of `points` updates of one stream, float64."""
    torch.manual_seed(0)
    lstm = (torch.nn.LSTMCell if cell else torch.nn.LSTM)(I, H, dtype=torch.float64)
    head = torch.nn.Linear(H, 1, dtype=torch.float64)
    params = [*lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=5e-3)
    xs = torch.randn(K + 1, I, dtype=torch.float64)
    h0, c0 = torch.zeros(1, H, dtype=torch.float64), torch.zeros(1, H, dtype=torch.float64)
    target = torch.ones(1, 1, dtype=torch.float64)

    def run(x, h, c):
        if cell:
            for t in range(len(x)):
                h, c = lstm(x[t : t + 1], (h, c))
            return h, c
        _, (h, c) = lstm(x, (h, c))
        return h, c

    def update():
        opt.zero_grad(set_to_none=True)
        h, c = run(xs[:K], h0, c0)
        loss = ((head(h) - target) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            run(xs[K:], h, c)

    def loop():
        for _ in range(points):
            update()

    return loop


def torch_batched(streams: int, points: int):
    """A loop of `points` updates of `streams` streams with their own weights, float32."""
    torch.manual_seed(0)
    B, f32 = streams, torch.float32
    W_ih = (torch.randn(B, I, 4 * H, dtype=f32) * 0.1).requires_grad_()
    W_hh = (torch.randn(B, H, 4 * H, dtype=f32) * 0.1).requires_grad_()
    b = torch.zeros(B, 1, 4 * H, dtype=f32, requires_grad=True)
    W_out = (torch.randn(B, H, 1, dtype=f32) * 0.1).requires_grad_()
    b_out = torch.zeros(B, 1, 1, dtype=f32, requires_grad=True)
    params = [W_ih, W_hh, b, W_out, b_out]
    opt = torch.optim.Adam(params, lr=5e-3)
    xs = torch.randn(B, K + 1, I, dtype=f32)
    h0 = torch.zeros(B, 1, H, dtype=f32)
    target = torch.ones(B, 1, 1, dtype=f32)

    def run(x, h, c):
        zx = torch.baddbmm(b, x, W_ih)  # (B, k, 4H): inputs for the whole window at once
        for t in range(x.shape[1]):
            z = torch.baddbmm(zx[:, t : t + 1], h, W_hh)
            i, f, g, o = z.chunk(4, dim=2)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def update():
        opt.zero_grad(set_to_none=True)
        h, c = run(xs[:, :K], h0, h0)
        loss = ((torch.baddbmm(b_out, h, W_out) - target) ** 2).sum()  # streams' losses are independent
        loss.backward()
        with torch.no_grad():  # per-stream clipping to norm 1
            norms = torch.sqrt(sum((p.grad.reshape(B, -1) ** 2).sum(1) for p in params))
            scale = torch.clamp(1.0 / (norms + 1e-12), max=1.0)
            for p in params:
                p.grad.mul_(scale.view(B, *([1] * (p.dim() - 1))))
        opt.step()
        with torch.no_grad():
            run(xs[:, K:], h, c)

    def loop():
        for _ in range(points):
            update()

    return loop


def ours_single(points: int, repeat: int, recompute: bool, season: str = "auto"):
    """A loop of `points` Forecaster.learn_one + forecast, H=32, k=16, float64.

    season="auto" (the default) adds seasonal inputs to level and change; "off" gives the model
    torch's I=2 inputs.
    """
    from lstmstream.learner import Fleet, Forecaster

    f = Forecaster(hidden_size=H, window=K, dtype="float64", season=season)
    f.fleet = Fleet(f.settings, recompute=recompute)  # its fleet of one, made here to pick the mode
    f.fleet.add(f.key)
    ys = np.sin(np.arange(K + 2 + points * (repeat + 1)) * 0.3)
    it = iter(ys)

    def loop():
        for _ in range(points):
            f.learn_one(float(next(it)))
            f.forecast()

    for _ in range(K + 2):
        f.learn_one(float(next(it)))
    return loop


def ours_batched(streams: int, points: int, repeat: int, recompute: bool):
    """A loop of `points` Fleet.learn calls over `streams` streams, float32 (as `lstmstream bench`)."""
    from lstmstream.bench import Config, synthetic
    from lstmstream.learner import Fleet, Settings

    fleet = Fleet(Settings(hidden=H, window=K, dtype="float32"), recompute=recompute)
    rows = np.array([fleet.add(f"sensor-{i}") for i in range(streams)])
    it = iter(synthetic(Config(streams=streams), K + 2 + points * (repeat + 1)))

    def loop():
        for _ in range(points):
            fleet.learn(rows, next(it)[:, None], np.zeros(streams))

    for _ in range(K + 2):
        fleet.learn(rows, next(it)[:, None], np.zeros(streams))
    return loop


def interleaved(loops: dict, repeat: int) -> dict[str, float]:
    """Best time of each loop, taking turns so that a busy machine slows them alike."""
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(repeat):
        for name, loop in loops.items():
            t0 = time.perf_counter()
            loop()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--points", type=int, default=20, help="points per timed run (batched: per stream)")
    ap.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    n1, B, n = args.points * 10, args.streams, args.points
    single = interleaved(
        {
            "torch_lstm": torch_single(n1, cell=False),
            "torch_lstmcell": torch_single(n1, cell=True),
            "ours": ours_single(n1, args.repeat, recompute=True),
            "ours_2in": ours_single(n1, args.repeat, recompute=True, season="off"),
            "ours_kept": ours_single(n1, args.repeat, recompute=False),
        },
        args.repeat,
    )
    batched = interleaved(
        {
            "torch": torch_batched(B, n),
            "ours": ours_batched(B, n, args.repeat, recompute=True),
            "ours_kept": ours_batched(B, n, args.repeat, recompute=False),
        },
        args.repeat,
    )
    torch_single_best = min(single["torch_lstm"], single["torch_lstmcell"])
    res = {
        "torch_lstm_us_per_point": single["torch_lstm"] / n1 * 1e6,
        "torch_lstmcell_us_per_point": single["torch_lstmcell"] / n1 * 1e6,
        "torch_batched_points_per_s": B * n / batched["torch"],
    }
    for mode in ("ours", "ours_2in", "ours_kept"):
        res[f"{mode}_single_us_per_point"] = single[mode] / n1 * 1e6
        res[f"{mode}_single_speedup"] = torch_single_best / single[mode]
    for mode in ("ours", "ours_kept"):
        res[f"{mode}_batched_points_per_s"] = B * n / batched[mode]
        res[f"{mode}_batched_speedup"] = batched["torch"] / batched[mode]
    print(f"single stream, H={H} k={K} float64 (torch {torch.__version__}, 1 thread), best of {args.repeat}")
    print(f"  torch nn.LSTM               {res['torch_lstm_us_per_point']:8.0f} µs/point")
    print(f"  torch LSTMCell              {res['torch_lstmcell_us_per_point']:8.0f} µs/point")
    names = (
        ("ours", "lstmstream (defaults)"),
        ("ours_2in", "lstmstream, season off"),
        ("ours_kept", "lstmstream --no-recompute"),
    )
    for mode, name in names:
        us, gain = res[f"{mode}_single_us_per_point"], res[f"{mode}_single_speedup"]
        print(f"  {name:27s} {us:8.0f} µs/point  {gain:.1f}x")
    print(f"{args.streams} streams, own weights, float32")
    print(f"  torch baddbmm               {res['torch_batched_points_per_s']:8.0f} points/s")
    for mode, name in (("ours", "lstmstream Fleet"), ("ours_kept", "Fleet --no-recompute")):
        rate, gain = res[f"{mode}_batched_points_per_s"], res[f"{mode}_batched_speedup"]
        print(f"  {name:27s} {rate:8.0f} points/s  {gain:.1f}x")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
