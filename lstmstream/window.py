"""Ring buffers of the last k inputs of many streams, and the state at each window's start.

Each ring stores every input twice (at p and p + k), so the window in time order is always the
contiguous slice [pos, pos + k): reading it needs no reordering. The truncated-BPTT forward
restarts from (h0, c0), the hidden/cell state just before the window's first input.
"""

from __future__ import annotations

import numpy as np

from .rows import at, ring_span


class Window:
    """Windows of k inputs of `size` features for `rows` streams, zero-padded until full."""

    def __init__(self, k: int, size: int, hidden: int, rows: int = 0, dtype=np.float64):
        self.k = k
        self.x = np.zeros((rows, 2 * k, size), dtype)
        self.pos = np.zeros(rows, np.int64)
        self.h0 = np.zeros((rows, hidden), dtype)
        self.c0 = np.zeros((rows, hidden), dtype)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x": self.x, "pos": self.pos, "h0": self.h0, "c0": self.c0}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.x, self.pos, self.h0, self.c0 = arrays["x"], arrays["pos"], arrays["h0"], arrays["c0"]

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The windows of `rows` (int array) in time order, oldest first: (B, k, size)."""
        ix = at(rows)
        if isinstance(ix, slice):  # one stream: a slice of its ring
            p = int(self.pos[ix.start])
            return self.x[ix, p : p + self.k]
        return self.x[ring_span(rows, self.pos[ix], self.k)]

    def push(self, rows: np.ndarray, x: np.ndarray, h0: np.ndarray, c0: np.ndarray) -> None:
        """Slide: append x (B, size), drop the oldest; (h0, c0) is the state before the new oldest."""
        ix = at(rows)
        if isinstance(ix, slice):  # one stream: basic indexing, both copies in one strided write
            r = ix.start
            p = int(self.pos[r])
            self.x[r, p :: self.k] = x  # x (1, size) fills both copies
            self.pos[r] = (p + 1) % self.k
        else:
            pos = self.pos[ix]
            self.x[ix, pos] = x
            self.x[ix, pos + self.k] = x
            self.pos[ix] = (pos + 1) % self.k
        self.h0[ix] = h0
        self.c0[ix] = c0
