"""Which rows of the per-stream arrays a call touches, as the cheapest index NumPy takes."""

from __future__ import annotations

import numpy as np


def at(rows: np.ndarray) -> slice | np.ndarray:
    """One stream's row as a slice (a view, ~0.3 µs) instead of a gather (~2 µs); else `rows`.

    A view aliases the state: read everything you need from it before writing that array.
    """
    if len(rows) == 1:
        r = int(rows[0])
        return slice(r, r + 1)
    return rows
