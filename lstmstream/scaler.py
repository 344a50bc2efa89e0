"""Online standardisation of many streams: Welford's mean and variance, optionally forgetting.

With weight a = max(1/n, forget) one update covers both cases:
    mean += a * (y - mean)
    var   = (1 - a) * (var + a * (y - mean_old)**2)
which for a = 1/n is exactly Welford's population variance, and for a fixed a an exponentially
weighted one that follows a drifting sensor.
"""

from __future__ import annotations

import numpy as np

from .rows import at


def floor(mean: np.ndarray) -> np.ndarray:
    """The least spread a stream is given around `mean`, so a constant stream never divides by zero."""
    return 1e-8 + 1e-6 * np.abs(mean)


class Scaler:
    """Running mean and variance of `size`-feature points for `rows` streams."""

    def __init__(self, size: int, rows: int = 0, forget: float = 0.0, dtype=np.float64):
        self.forget = forget
        self.n = np.zeros(rows, np.int64)
        self.mean = np.zeros((rows, size), dtype)
        self.var = np.zeros((rows, size), dtype)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"n": self.n, "mean": self.mean, "var": self.var}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.n, self.mean, self.var = arrays["n"], arrays["mean"], arrays["var"]

    def update(self, rows: np.ndarray, y: np.ndarray) -> None:
        ix = at(rows)  # one row: views, each read before its array is written
        n = self.n[ix] + 1
        a = np.maximum(1.0 / n, self.forget)[:, None].astype(self.mean.dtype, copy=False)
        mean, var = self.mean[ix], self.var[ix]
        d = y - mean
        self.mean[ix] = mean + a * d
        self.var[ix] = (1.0 - a) * (var + a * d * d)
        self.n[ix] = n

    def std(self, rows: np.ndarray) -> np.ndarray:
        """Standard deviation, floored so a constant stream never divides by zero."""
        ix = at(rows)
        return np.maximum(np.sqrt(self.var[ix]), floor(self.mean[ix]))
