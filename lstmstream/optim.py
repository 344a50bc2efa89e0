"""SGD and Adam over flat parameter rows, one row per model, with clipping and a finite guard.

A row is every parameter of one model laid end to end (see lstm.Layout), so one optimizer step
is a handful of array operations however many streams are updated. Optimizer state is plain
arrays with the same leading row axis: easy to checkpoint, grow and gather.
"""

from __future__ import annotations

import numpy as np


def clip(g: np.ndarray, max_norm: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Scale each row of g (B, P) to a global L2 norm of at most max_norm.

    Returns (clipped g, norms before clipping); a row with a non-finite norm comes back as is.
    """
    norms = np.sqrt(np.einsum("bp,bp->b", g, g))
    if max_norm is None:
        return g, norms
    with np.errstate(invalid="ignore"):
        scale = np.minimum(1.0, max_norm / (norms + 1e-12))
    scale = np.where(np.isfinite(scale), scale, 1.0).astype(g.dtype)
    return g * scale[:, None], norms


class SGD:
    """w <- w - lr * g."""

    def __init__(self, lr: float = 1e-2, max_norm: float | None = None):
        self.lr, self.max_norm = lr, max_norm

    def init_state(self, rows: int, size: int, dtype=np.float64) -> dict[str, np.ndarray]:
        return {"t": np.zeros(rows, np.int64)}

    def step(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        """Update w (B, P) in place; returns the rows that stepped (False: non-finite, skipped)."""
        g, norms = clip(g, self.max_norm)
        ok = np.isfinite(norms)
        w -= self.lr * np.where(ok[:, None], g, 0.0)
        state["t"] += ok
        return ok


class Adam:
    """PyTorch's Adam (same defaults, bias correction and eps placement), per row."""

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        max_norm: float | None = None,
    ):
        self.lr, self.betas, self.eps, self.max_norm = lr, betas, eps, max_norm

    def init_state(self, rows: int, size: int, dtype=np.float64) -> dict[str, np.ndarray]:
        return {
            "t": np.zeros(rows, np.int64),
            "m": np.zeros((rows, size), dtype),
            "v": np.zeros((rows, size), dtype),
        }

    def step(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        """Update w (B, P) and state in place; returns the rows that stepped.

        A row whose gradient is not finite is left untouched, and its step count does not move.
        """
        b1, b2 = self.betas
        g, norms = clip(g, self.max_norm)
        ok = np.isfinite(norms)
        if not ok.all():
            g = np.where(ok[:, None], g, 0.0)
        m, v = state["m"], state["v"]
        keep1 = np.where(ok, b1, 1.0)[:, None].astype(w.dtype)
        keep2 = np.where(ok, b2, 1.0)[:, None].astype(w.dtype)
        m *= keep1
        m += (1.0 - keep1) * g
        v *= keep2
        v += (1.0 - keep2) * (g * g)
        state["t"] += ok
        t = np.maximum(state["t"], 1)
        bc1 = 1.0 - b1**t
        bc2 = 1.0 - b2**t
        denom = np.sqrt(v) / np.sqrt(bc2)[:, None].astype(w.dtype) + self.eps
        step = np.where(ok, self.lr / bc1, 0.0)[:, None].astype(w.dtype)
        w -= step * (m / denom)
        return ok
