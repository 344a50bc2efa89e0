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

# floor's constants as 0-d arrays: NumPy takes them faster than Python numbers (float64 statistics)
_ABS, _REL = np.array(1e-8), np.array(1e-6)


def floor(mean: np.ndarray) -> np.ndarray:
    """The least spread a stream is given around `mean`, so a constant stream never divides by zero."""
    return _ABS + _REL * np.abs(mean)


def spread(mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """floor(mean) and the standard deviation sqrt(var) floored by it."""
    lo = floor(mean)
    return lo, np.maximum(np.sqrt(var), lo)


def rate(n: np.ndarray, least: float, dtype) -> np.generic | np.ndarray:
    """The per-row weight max(1/n, least) (n >= 1) in `dtype`, shaped to scale (B, D) rows:
    a NumPy scalar for one row (scalar arithmetic is far cheaper than a call on a 1-element
    array, and gives the same bits), else a (B, 1) column."""
    if len(n) == 1:
        return np.dtype(dtype).type(max(1.0 / int(n[0]), least))
    return np.maximum(1.0 / n, least)[:, None].astype(dtype, copy=False)


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

    def update(self, rows: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Take in y (B, size) for `rows`; returns their new means and variances."""
        ix = at(rows)
        return self.update_at(ix, y, self.n[ix] + 1)

    def update_at(
        self, ix: slice | np.ndarray, y: np.ndarray, n: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`update` for an index from rows.at (one row: views, each read before it is written),
        n: the rows' point counts with y."""
        a = rate(n, self.forget, self.mean.dtype)
        mean, var = self.mean[ix], self.var[ix]
        d = y - mean
        ad = a * d
        # new arrays, not in-place updates: on a few values `x += y` costs several times `x + y`
        mean, var = mean + ad, (var + ad * d) * (1.0 - a)
        self.mean[ix], self.var[ix], self.n[ix] = mean, var, n
        return mean, var

    def std(self, rows: np.ndarray) -> np.ndarray:
        """Standard deviation, floored so a constant stream never divides by zero."""
        ix = at(rows)
        return spread(self.mean[ix], self.var[ix])[1]
