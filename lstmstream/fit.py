"""`fit`: offline training on a history, saved as warm-start weights for new streams.

The notebook's workflow, on the online learner's own inputs: every stream of the file is fed
through a fleet's `observe`/`target` (so the scaling and features are exactly the ones the
online learner will see), cut into windows of k inputs with the scaled next change as target,
and one shared model is trained for some epochs of shuffled minibatches. The batched core does
the work: one parameter row broadcast over B windows, the B gradients summed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import lstm
from .evaluate import Stream, load
from .learner import Fleet, Settings, save_init, stream_rng
from .optim import Adam


@dataclass
class Windows:
    """Window j is x[ends[j] - k : ends[j]] (oldest first), and the model should output targets[j]."""

    x: np.ndarray  # (points, I) every stream's inputs, one stream after another
    ends: np.ndarray  # (N,)
    targets: np.ndarray  # (N, size)
    k: int

    def inputs(self, idx: np.ndarray) -> np.ndarray:
        return self.x[self.ends[idx, None] - self.k + np.arange(self.k)]


def windows(streams: list[Stream], settings: Settings) -> Windows:
    """Every full window of every stream, with the online learner's inputs and targets."""
    size, k = streams[0].y.shape[1], settings.window
    xs, ends, targets, at = [], [], [], 0
    for s in streams:
        fleet = Fleet(settings, size)
        row = np.array([fleet.add(s.key)])
        x = np.empty((len(s.t), fleet.layout.shapes["W_ih"][1]))
        r = np.empty((len(s.t), size))
        for i in range(len(s.t)):
            r[i] = fleet.target(row, s.y[i : i + 1])[0]
            x[i] = fleet.observe(row, s.y[i : i + 1], s.t[i : i + 1])[0]
        xs.append(x)
        ends.extend(range(at + k, at + len(s.t)))
        targets.extend(r[k:])
        at += len(s.t)
    if not ends:
        raise ValueError(f"no stream is longer than the window ({k} points)")
    return Windows(np.concatenate(xs), np.array(ends), np.array(targets), k)


def train(data: Windows, settings: Settings, epochs: int, batch: int, log=print) -> tuple[dict, float]:
    """Train one shared model on the windows; returns its params (unbatched) and the last loss."""
    inputs = data.x.shape[1]
    size = data.targets.shape[1]
    layout = lstm.Layout(inputs, settings.hidden, size)
    rng = stream_rng(settings.seed, "fit")
    p0 = lstm.init_params(inputs, settings.hidden, size, rng)
    w = layout.flatten({n: v[None] for n, v in p0.items()}, 1)
    optim = Adam(lr=settings.lr, max_norm=settings.clip)
    state = optim.init_state(1, layout.size)
    H = settings.hidden
    baseline = float(np.mean(data.targets**2))
    loss = baseline
    for epoch in range(epochs):
        order = rng.permutation(len(data.targets))
        total = 0.0
        for at in range(0, len(order), batch):
            idx = order[at : at + batch]
            B = len(idx)
            p = layout.views(np.broadcast_to(w, (B, layout.size)))
            zeros = np.zeros((B, H))
            ys, tr = lstm.forward(p, data.inputs(idx), zeros, zeros)
            losses, dys = lstm.mse(ys, data.targets[idx])
            grads, _, _ = lstm.backward(p, tr, dys)
            g = layout.flatten(grads, B).sum(axis=0, keepdims=True) / B
            optim.step(w, g, state)
            total += float(losses.sum())
        loss = total / len(order)
        log(f"epoch {epoch + 1}/{epochs}: loss {loss:.4f} (predicting no change: {baseline:.4f})")
    return {n: v[0].copy() for n, v in layout.views(w).items()}, loss


def run_fit(path: str, settings: Settings, epochs: int, batch: int, out: str, log=print) -> dict:
    """The `fit` command: windows from the file, training, and the model file; returns its info."""
    streams = load([path])
    sizes = {s.y.shape[1] for s in streams}
    if len(sizes) != 1:
        raise ValueError(f"{path}: streams of different sizes {sorted(sizes)}; fit one size at a time")
    data = windows(streams, settings)
    log(f"{len(data.targets)} windows of {settings.window} points from {len(streams)} stream(s)")
    params, loss = train(data, settings, epochs, batch, log)
    info = {
        "settings": settings.to_dict(),
        "size": sizes.pop(),
        "inputs": int(data.x.shape[1]),
        "epochs": epochs,
        "windows": len(data.targets),
        "loss": loss,
        "source": str(path),
    }
    save_init(out, params, info)
    log(f"wrote {out}")
    return info
