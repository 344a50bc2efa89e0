"""A synthetic multi-sensor feed for the demo: daily cycles, trends, noise, and one spike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .csvio import Point

START = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400.0


@dataclass(frozen=True)
class Feed:
    points: list[Point]  # interleaved by time
    spike_key: str
    spike_t: float


def _signals(days: int, per_day: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = days * per_day
    phase = 2 * np.pi * np.arange(n) / per_day  # one turn a day
    trend = np.arange(n) / per_day  # in days
    return {
        "plant1/boiler-1/temp": 70 + 5 * np.sin(phase) + rng.normal(0, 0.3, n),
        "plant1/boiler-2/temp": 65 + 4 * np.sin(phase - 1.0) + 0.4 * trend + rng.normal(0, 0.3, n),
        "plant1/pump-1/pressure": 3.0 + 0.2 * np.sin(2 * phase) + rng.normal(0, 0.02, n),
        "plant1/line-1/power": 120 + 30 * np.maximum(0, np.sin(phase)) + 1.5 * trend + rng.normal(0, 2, n),
        "plant2/hall/humidity": 45 - 8 * np.sin(phase + 0.5) + rng.normal(0, 1, n),
    }


def sensor_feed(days: int = 14, per_day: int = 48, seed: int = 0) -> Feed:
    """`days` of readings every 24h/`per_day` from five sensors; the pump's pressure jumps by
    1.5 bar (75 noise standard deviations) for one reading, two thirds of the way through."""
    signals = _signals(days, per_day, np.random.default_rng(seed))
    spike_key, spike_i = "plant1/pump-1/pressure", (2 * days * per_day) // 3
    signals[spike_key][spike_i] += 1.5
    ts = START + np.arange(days * per_day) * (DAY / per_day)
    points = [
        Point(key, float(ts[i]), round(float(y[i]), 4), i + 2)
        for i in range(days * per_day)
        for key, y in signals.items()
    ]
    return Feed(points, spike_key, float(ts[spike_i]))
