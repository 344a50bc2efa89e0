"""The last k steps' activations of many streams, kept as points arrive (Fleet(recompute=False)).

With recompute off, an update backpropagates through the activations each step had when its point
arrived (computed with the weights of that moment) instead of rerunning the window with the
current weights: about half the work of an update, at the price of a slightly stale gradient.
Rings are stored twice over (like `Window`), so the last k steps are one contiguous slice.
"""

from __future__ import annotations

import numpy as np

from .lstm import Trace
from .rows import ring_span


class Steps:
    """Per stream and step: [x_t, 1, h_{t-1}], c_{t-1}, gate activations and tanh(c_t)."""

    def __init__(self, k: int, inputs: int, hidden: int, rows: int = 0, dtype=np.float64):
        self.k = k
        self.hx = np.zeros((rows, 2 * k, inputs + 1 + hidden), dtype)
        self.cp = np.zeros((rows, 2 * k, hidden), dtype)
        self.act = np.zeros((rows, 2 * k, 4 * hidden), dtype)
        self.tc = np.zeros((rows, 2 * k, hidden), dtype)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"hx": self.hx, "cp": self.cp, "act": self.act, "tc": self.tc}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.hx, self.cp, self.act, self.tc = arrays["hx"], arrays["cp"], arrays["act"], arrays["tc"]

    def keep(self, rows: np.ndarray, slot: np.ndarray, tr: Trace) -> None:
        """Store a one-step trace of `rows` at ring positions `slot` (B,)."""
        for ring, step in (
            (self.hx, tr.hx[0]),
            (self.cp, tr.cs[0]),
            (self.act, tr.act[0]),
            (self.tc, tr.tcs[0]),
        ):
            ring[rows, slot] = step
            ring[rows, slot + self.k] = step

    def trace(self, rows: np.ndarray, pos: np.ndarray, h: np.ndarray, c: np.ndarray) -> Trace:
        """The last k steps of `rows` (ring start `pos`), ending in their current state (h, c).

        Steps before a stream's first points are zeros, through which no gradient flows.
        """
        B, k = len(rows), self.k
        span = ring_span(rows, pos, k)
        hx = np.empty((k + 1, B, self.hx.shape[2]), self.hx.dtype)
        hx[:k] = self.hx[span].swapaxes(0, 1)
        I = hx.shape[2] - h.shape[1] - 1
        hx[k, :, I] = 1.0
        hx[k, :, I + 1 :] = h
        cs = np.empty((k + 1, B, h.shape[1]), self.cp.dtype)
        cs[:k] = self.cp[span].swapaxes(0, 1)
        cs[k] = c
        return Trace(hx, cs, self.tc[span].swapaxes(0, 1), self.act[span].swapaxes(0, 1))
