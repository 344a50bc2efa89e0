"""`eval --plot`: actual values against forecasts and their interval (needs the `plot` extra)."""

from __future__ import annotations

import numpy as np

MAX_PANELS = 12


def plot_forecasts(path: str, groups: dict, traces: dict) -> None:
    """One panel per stream (the first MAX_PANELS): the actual value, the forecast made for it
    one step earlier, and that forecast's interval; a vector stream shows its first value."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError("--plot needs matplotlib: pip install 'lstmstream[plot]'") from e
    panels = [(s, traces[size], m) for size, group in groups.items() for m, s in enumerate(group)]
    panels = panels[:MAX_PANELS]
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 2.6 * len(panels)), squeeze=False)
    for ax, (s, tr, m) in zip(axes[:, 0], panels, strict=True):
        n = len(s.t)
        x = np.arange(1, n)
        ax.fill_between(
            x, tr.lo[m, : n - 1, 0], tr.hi[m, : n - 1, 0], color="C1", alpha=0.25, lw=0, label="interval"
        )
        ax.plot(np.arange(n), s.y[:, 0], color="C0", lw=0.8, label="actual")
        ax.plot(x, tr.v[m, : n - 1, 0], color="C1", lw=0.8, label="forecast")
        ax.set_title(s.key, fontsize=9, loc="left")
        ax.margins(x=0)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("point")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
