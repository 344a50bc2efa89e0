"""The online learner: one truncated-BPTT update per arriving point, for one stream or thousands.

`Fleet` holds every stream's parameters, optimizer moments, window, scaler and state in stacked
arrays (one row per stream) and updates all streams that received a point in one batched step.
`Forecaster` is a fleet of one with River's conventions. The daemon, `eval`, `fit` and `bench`
all go through `Fleet.learn`, so the same stream with the same settings gives the same forecasts
everywhere.

Per point y_t of a stream (test, then train):
  1. score the forecast made for y_t: err = y_t - f_t, score = |err| / sigma;
  2. one TBPTT update over the window x_{t-k} .. x_{t-1}, restarted from the state before it,
     towards the scaled change r_t = (y_t - y_{t-1}) / std (or the scaled level, residual=False);
  3. standardise y_t into the input x_t = ((y_t - mean) / std, (y_t - y_{t-1}) / std), plus the
     calendar and seasonal inputs of season.Clock, and slide it into the window;
  4. advance the state one step with the updated weights: f_{t+1} = y_t + std * (W_out h_t + b_out).
The forward is recomputed over the window with the current weights at every update (see README).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from statistics import NormalDist

import numpy as np

from . import lstm
from .optim import ONE_OK, Adam
from .rows import at, contiguous
from .scaler import Scaler, rate, spread
from .season import Clock, span
from .steps import Steps
from .window import Window

_ONE = np.ones((), np.int64)  # a count's increment: NumPy adds a 0-d array faster than a Python int

# a stream's step size at its t-th update: lr / sqrt(1 + t / LR_DECAY), but at least lr * LR_FLOOR
# (reached after 8000 points): smaller steps cost accuracy on streams that change level
LR_DECAY, LR_FLOOR = 1000.0, 1 / 3


@dataclass(frozen=True)
class Settings:
    """Everything that fixes a stream's maths; two runs with equal settings agree exactly."""

    hidden: int = 32
    window: int = 16
    lr: float = 5e-3
    seed: int = 0
    clip: float = 1.0
    forget: float = 0.0
    residual: bool = True
    interval: float = 0.95
    dtype: str = "float32"  # the model's arrays; statistics and forecasts are float64
    calendar: str = "off"
    tz: str = "UTC"
    season: str = "auto"
    season_slots: int = 288

    def to_dict(self) -> dict:
        return asdict(self)


def stream_rng(seed: int, key: str) -> np.random.Generator:
    """A generator seeded by (seed, key) through a stable hash, never Python's salted hash()."""
    digest = hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


@dataclass
class Step:
    """What one learn call produced, one row per stream (as the daemon publishes it).

    The interval lo, hi = v - z sigma, v + z sigma is computed when read (a Forecaster never
    reads it).
    """

    rows: np.ndarray  # (B,)
    t: np.ndarray  # (B,) timestamp of the point just learned
    v: np.ndarray  # (B, D) forecast of the next value
    err: np.ndarray  # (B, D) error of the forecast for this point; NaN on a stream's first point
    score: np.ndarray  # (B,) anomaly score |err| / sigma (max over dimensions); NaN likewise
    n: np.ndarray  # (B,) points learned on the stream
    sig2: np.ndarray  # (B, D) running variance of the errors, this one included
    z: float  # the interval's half-width in sigmas

    @cached_property
    def half(self) -> np.ndarray:
        """(B, D): half the interval's width, z sigma."""
        return self.z * np.sqrt(self.sig2)

    @property
    def lo(self) -> np.ndarray:
        return self.v - self.half

    @property
    def hi(self) -> np.ndarray:
        return self.v + self.half


class Fleet:
    """Many streams of `size`-dimensional points, each with its own LSTM, learned in batches."""

    GROWTH = 2
    BLOCK = 64  # streams per training step: their weights stay in cache from forward to optimizer

    def __init__(
        self,
        settings: Settings | None = None,
        size: int = 1,
        init: dict | None = None,
        recompute: bool = True,
    ):
        """`init`: weights (from `load_init`) that every new stream starts from, else seeded ones.

        recompute=False: backpropagate through the activations kept as points arrived instead of
        rerunning the window with the current weights (about half an update's work; a slightly
        staler gradient). Meant to become a Settings option once its default is chosen.
        """
        self.settings = s = settings or Settings()
        self.size = size
        self.dtype = np.dtype(s.dtype)
        self.clock = Clock(s.calendar, s.tz, s.season, s.season_slots, size)
        self.inputs = 2 * size + self.clock.n_inputs
        self.layout = lstm.Layout(self.inputs, s.hidden, size)
        self.init = None if init is None else self._check_init(init)
        self.optim = Adam(lr=s.lr, max_norm=s.clip, decay=LR_DECAY, min_lr=s.lr * LR_FLOOR)
        self.z = NormalDist().inv_cdf(0.5 + s.interval / 2)
        self.keys: list[str] = []
        self.index: dict[str, int] = {}
        self.window = Window(s.window, self.inputs, s.hidden, 0, self.dtype)
        self.steps = None if recompute else Steps(s.window, self.inputs, s.hidden, 0, self.dtype)
        self.scaler = Scaler(size, 0, s.forget, np.float64)
        self.w = np.zeros((0, self.layout.size), self.dtype)
        self.adam = self.optim.init_state(0, self.layout.size, self.dtype)
        self.h = np.zeros((0, s.hidden), self.dtype)
        self.c = np.zeros((0, s.hidden), self.dtype)
        self.fc = np.zeros((0, size), np.float64)
        self.last_y = np.zeros((0, size), np.float64)
        self.last_t = np.zeros(0, np.float64)
        self.sig2 = np.zeros((0, size), np.float64)
        self.skipped = np.zeros(0, np.int64)
        self._kept: tuple = (None, None)  # (slice bounds, views) of the last `_weights`
        self._grad: tuple = (np.empty((0, self.layout.size), self.dtype),)  # work space g, its blocks

    # ---- state as data -------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        """Every per-stream array, by name, with the stream on the leading axis (capacity rows)."""
        out = {
            "w": self.w,
            "h": self.h,
            "c": self.c,
            "fc": self.fc,
            "last_y": self.last_y,
            "last_t": self.last_t,
            "sig2": self.sig2,
            "skipped": self.skipped,
        }
        out.update({f"adam.{n}": a for n, a in self.adam.items()})
        out.update({f"window.{n}": a for n, a in self.window.arrays().items()})
        out.update({f"scaler.{n}": a for n, a in self.scaler.arrays().items()})
        out.update({f"clock.{n}": a for n, a in self.clock.arrays().items()})
        if self.steps is not None:
            out.update({f"steps.{n}": a for n, a in self.steps.arrays().items()})
        return out

    def _load(self, arrays: dict[str, np.ndarray]) -> None:
        self._kept = (None, None)  # views of the old arrays
        for n in ("w", "h", "c", "fc", "last_y", "last_t", "sig2", "skipped"):
            setattr(self, n, arrays[n])
        self.adam = {n: arrays[f"adam.{n}"] for n in self.adam}
        self.window.load({n: arrays[f"window.{n}"] for n in self.window.arrays()})
        if self.steps is not None:
            self.steps.load({n: arrays[f"steps.{n}"] for n in self.steps.arrays()})
        self.scaler.load({n: arrays[f"scaler.{n}"] for n in self.scaler.arrays()})
        self.clock.load({n: arrays[f"clock.{n}"] for n in self.clock.arrays()})

    def export(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """A copy of the state of `rows`: everything those streams need to continue."""
        return {n: a[rows].copy() for n, a in self.arrays().items()}

    def restore(self, keys: list[str], arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Add (or overwrite) streams from an export; returns their rows.

        New keys are appended in one go, without drawing initial weights the export overwrites.
        """
        new = [k for k in dict.fromkeys(keys) if k not in self.index]
        if len(self.keys) + len(new) > self.capacity:
            self._grow(len(self.keys) + len(new))
        self.index.update((k, len(self.keys) + i) for i, k in enumerate(new))
        self.keys += new
        rows = np.fromiter((self.index[k] for k in keys), np.int64, len(keys))
        ix = contiguous(rows)  # appended rows: a slice copies faster than fancy indexing
        for n, a in self.arrays().items():
            a[ix] = arrays[n]
        return rows

    @property
    def capacity(self) -> int:
        return self.w.shape[0]

    def _grow(self, need: int) -> None:
        cap = max(need, self.GROWTH * self.capacity, 8)
        grown = {}
        for n, a in self.arrays().items():
            b = np.zeros((cap, *a.shape[1:]), a.dtype)
            b[: len(self.keys)] = a[: len(self.keys)]
            grown[n] = b
        self._load(grown)

    def add(self, key: str) -> int:
        """The row of stream `key`, created with fresh seeded weights on first sight."""
        row = self.index.get(key)
        if row is not None:
            return row
        row = len(self.keys)
        if row >= self.capacity:
            self._grow(row + 1)
        self.keys.append(key)
        self.index[key] = row
        if self.init is not None:
            self.w[row] = self.init
        else:
            s = self.settings
            p = lstm.init_params(2 * self.size, s.hidden, self.size, stream_rng(s.seed, key), self.dtype)
            if self.clock.n_inputs:  # drawn apart, so an input that stays zero changes no forecast
                rng = stream_rng(s.seed, key + "\0clock")
                extra = lstm.init_params(self.clock.n_inputs, s.hidden, self.size, rng, self.dtype)["W_ih"]
                p["W_ih"] = np.concatenate((p["W_ih"], extra), axis=1)
            self.w[row] = self.layout.flatten({n: v[None] for n, v in p.items()}, 1)[0]
        return row

    def remove(self, key: str) -> str | None:
        """Forget stream `key`. The last stream moves into its row (one row copied, not the fleet);
        returns that stream's key, whose row is now the freed one, or None if nothing moved."""
        row = self.index.pop(key)
        last = len(self.keys) - 1
        arrays = self.arrays().values()
        moved = None
        if row != last:
            moved = self.keys[row] = self.keys[last]
            self.index[moved] = row
            for a in arrays:
                a[row] = a[last]
        self.keys.pop()
        for a in arrays:
            a[last] = 0  # a row is all zeros until `add` seeds it
        return moved

    def _check_init(self, init: dict) -> np.ndarray:
        """The flat row of warm-start weights, after checking they fit this fleet's model."""
        for n, shape in self.layout.shapes.items():
            got = np.shape(init.get(n))
            if got != shape:
                raise ValueError(
                    f"warm-start weights do not fit: {n} is {got}, these settings and a "
                    f"{self.size}-value stream need {shape} (hidden, window and inputs must match the fit)"
                )
        return self.layout.flatten({n: np.asarray(init[n], self.dtype)[None] for n in lstm.NAMES}, 1)[0]

    # ---- learning ------------------------------------------------------------------------

    def learn(self, rows: np.ndarray, ys: np.ndarray, ts: np.ndarray) -> Step:
        """Learn one point for each of `rows` (distinct) and return their new forecasts.

        ys (B, size) finite values, ts (B,) timestamps; validation is the caller's job.
        """
        rows = np.asarray(rows, np.int64)
        ys = np.asarray(ys, np.float64).reshape(len(rows), self.size)
        ix = at(rows)  # reads through ix are views for one stream: read before writing
        n_prev = self.scaler.n[ix].copy()
        least = _least(n_prev)  # > 0: no stream is on its first point, the common case
        floor, std = spread(self.scaler.mean[ix], self.scaler.var[ix])

        err, score, sig2 = self._score(ix, ys, n_prev, least, floor)
        target = self._target(ix, ys, std).astype(self.dtype, copy=False)
        if least > 0:
            h, c, h0, c0 = self._train(rows, target)
        else:
            seen = n_prev > 0
            h, c = self.h[rows], self.c[rows]
            h0, c0 = self.window.h0[rows], self.window.c0[rows]
            if np.count_nonzero(seen):
                h[seen], c[seen], h0[seen], c0[seen] = self._train(rows[seen], target[seen])

        n = n_prev + _ONE
        x, mean, std = self._observe(rows, ix, ys, ts, n_prev, n, least)
        self.window.push(rows, x, h0, c0)
        out, h, c = self._advance(rows, x, h, c, keep=True)
        fc = self._level(ys, mean, std, out)
        self.h[ix], self.c[ix], self.fc[ix] = h, c, fc
        return Step(rows, np.asarray(ts, np.float64), fc, err, score, n, sig2, self.z)

    def _score(
        self, ix: slice | np.ndarray, ys: np.ndarray, m: np.ndarray, least: int, floor: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Error of the pending forecasts, the anomaly score, and the running error variance.

        m: errors seen so far, this one included (the points seen before it); least: min(m);
        floor: the streams' least spread.
        """
        sig2_old = self.sig2[ix]
        err = ys - self.fc[ix]
        if least > 0:
            a = rate(m, 0.01, np.float64)
            sq = np.square(err)
        else:  # some stream's first point: no forecast to score, its variance stays
            seen = (m > 0)[:, None]
            err = np.where(seen, err, np.nan)
            a = rate(np.maximum(m, 1), 0.01, np.float64)
            sq = np.fmax(np.square(err), 0.0)  # fmax drops NaN: a first point adds 0
        sig2 = sig2_old + a * (sq - sig2_old)
        if least < 1:
            sig2 = np.where(seen, sig2, sig2_old)
        # the first error is its own yardstick; in float64 like the new variances
        ref = sig2_old if least > 1 else np.where((m == 1)[:, None], sig2, sig2_old)
        sigma = np.maximum(np.sqrt(ref), floor)  # before sig2_old, a view, is written
        self.sig2[ix] = sig2
        score = np.abs(err) / sigma  # NaN on a first point
        return err, score[:, 0] if self.size == 1 else np.max(score, axis=1), sig2

    def target(self, rows: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """What the model learns to output for the new points ys (B, size), before `observe`s them."""
        return self._target(at(rows), ys, self.scaler.std(rows))

    def _target(self, ix: slice | np.ndarray, ys: np.ndarray, std: np.ndarray) -> np.ndarray:
        base = self.last_y[ix] if self.settings.residual else self.scaler.mean[ix]
        return (ys - base) / std

    def observe(self, rows: np.ndarray, ys: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Take the new points into each stream's running statistics; returns their inputs (B, I)."""
        ix = at(rows)
        n = self.scaler.n[ix].copy()
        return self._observe(rows, ix, ys, ts, n, n + 1, _least(n))[0]

    def _observe(
        self,
        rows: np.ndarray,
        ix: slice | np.ndarray,
        ys: np.ndarray,
        ts: np.ndarray,
        n: np.ndarray,
        n_new: np.ndarray,
        least: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """observe (ix = at(rows); n: points seen before, n_new = n + 1, least: min(n)), also
        returning the new means and stds."""
        mean, var = self.scaler.update_at(ix, ys, n_new)
        std = spread(mean, var)[1]
        prev = self.last_y[ix] if least > 0 else np.where((n > 0)[:, None], self.last_y[ix], ys)
        extra = self.clock.inputs(rows, ys, prev, ts, std, n) if self.clock.n_inputs else None
        x = self._features(ys, prev, mean, std, extra)
        self.last_y[ix] = ys
        self.last_t[ix] = ts
        return x, mean, std

    def _features(
        self, y: np.ndarray, prev: np.ndarray, mean: np.ndarray, std: np.ndarray, extra: np.ndarray | None
    ) -> np.ndarray:
        """The inputs (B, I): level and change, standardised, then the clock's `extra` inputs.

        Joined into one array of the fleet's dtype (the clock computes in float64)."""
        parts = ((y - mean) / std, (y - prev) / std) + (() if extra is None else (extra,))
        return np.concatenate(parts, axis=1, dtype=self.dtype)

    def _level(self, y: np.ndarray, mean: np.ndarray, std: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Turn the model's scaled output back into a forecast of the next value."""
        return (y if self.settings.residual else mean) + std * out

    def _train(self, rows: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, ...]:
        """One TBPTT step for `rows` towards their targets (B, size), in blocks of BLOCK streams.

        Returns the recomputed states (h_k, c_k) and the new window start states (h_1, c_1).
        """
        if len(rows) <= self.BLOCK:
            tr = self._train_block(rows, target)
            hs, cs = tr.hs, tr.cs
            return hs[-1], cs[-1], hs[1], cs[1]
        out = np.empty((4, len(rows), self.settings.hidden), self.dtype)
        for lo in range(0, len(rows), self.BLOCK):
            part = slice(lo, lo + self.BLOCK)
            tr = self._train_block(rows[part], target[part])
            out[:, part] = tr.hs[-1], tr.cs[-1], tr.hs[1], tr.cs[1]
        return tuple(out)

    def _train_block(self, rows: np.ndarray, target: np.ndarray) -> lstm.Trace:
        """Forward over the window, last-step loss gradient, optimizer step; so few streams that
        their weights stay in cache from the forward through the optimizer."""
        ix = contiguous(rows)  # consecutive rows: work on views, nothing to scatter back
        w, Wx, Wy, state = self._weights(ix)
        if self.steps is None:
            tr = lstm.run(Wx, self.window.read(rows), self.window.h0[ix], self.window.c0[ix])
        else:
            tr = self.steps.trace(rows, self.window.pos[rows], self.h[rows], self.c[rows])
        g, gx, gy = self._grads(len(rows))
        lstm.last_step_grads(Wx, Wy, tr, target, gx, gy)
        ok = self.optim.step(w, g, state)
        if isinstance(ix, np.ndarray):  # a gather made copies: scatter them back
            self.w[rows] = w
            for n, a in state.items():
                self.adam[n][rows] = a
        if ok is not ONE_OK and np.count_nonzero(ok) < len(ok):
            self.skipped[rows] += ~ok
        return tr

    def _weights(self, ix: slice | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """w[ix], its blocks Wx and Wy, and Adam's state[ix].

        For a slice they are kept until another slice comes or `_load` replaces the arrays: a lone
        stream, learning point after point, takes the same views every time.
        """
        key = (ix.start, ix.stop) if isinstance(ix, slice) else None
        if key is not None and key == self._kept[0]:
            return self._kept[1]
        w = self.w[ix]
        views = (w, *self.layout.blocks(w), {n: a[ix] for n, a in self.adam.items()})
        if key is not None:
            self._kept = key, views
        return views

    def _grads(self, B: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A gradient buffer g (B, P) and its blocks, kept while B stays: the optimizer's work space."""
        if len(self._grad[0]) != B:
            g = np.empty((B, self.layout.size), self.dtype)
            self._grad = (g, *self.layout.blocks(g))
        return self._grad

    def _advance(
        self, rows: np.ndarray, x: np.ndarray, h: np.ndarray, c: np.ndarray, keep: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step from (h, c) on inputs x (B, I): outputs (B, O) and the new states.

        keep: store the step's activations for the next update (learning, not forecasting).
        """
        _, Wx, Wy, _ = self._weights(contiguous(rows))  # the training step's views, for the same rows
        tr = lstm.run(Wx, x[:, None], h, c)
        if keep and self.steps is not None:
            self.steps.keep(rows, (self.window.pos[rows] - 1) % self.settings.window, tr)
        return lstm.output(Wy, tr), tr.hs[-1], tr.cs[-1]

    def forecast(self, rows: np.ndarray, horizon: int = 1) -> np.ndarray:
        """Forecasts (B, horizon, size) of the next `horizon` values, feeding forecasts back in.

        Changes nothing: a stream's state is only read.
        """
        rows = np.asarray(rows, np.int64)
        out = np.empty((len(rows), horizon, self.size))
        out[:, 0] = self.fc[at(rows)]
        if horizon > 1:
            self._roll(rows, out)
        return out

    def _roll(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Fill out[:, 1:] by feeding each forecast back in as the next point."""
        f, prev = out[:, 0], self.last_y[rows]
        h, c = self.h[rows], self.c[rows]
        mean, std = self.scaler.mean[rows], self.scaler.std(rows)
        t, dt = self.last_t[rows], self.clock.dt[rows]
        for j in range(1, out.shape[1]):
            t = t + dt
            extra = self.clock.features(rows, t, std) if self.clock.n_inputs else None
            x = self._features(f, prev, mean, std, extra)
            y_out, h, c = self._advance(rows, x, h, c)
            f, prev = self._level(f, mean, std, y_out), f
            out[:, j] = f

    def describe(self, row: int) -> dict:
        """A stream's detected sampling interval and season, and the inputs it learns from."""
        info = self.clock.describe(row)
        names = ["level", "change"] + ["calendar"] * info["calendar"]
        names += [f"season {span(p)}" for p in info["seasons"]]
        return {**info, "inputs": names}


def _least(n: np.ndarray) -> int:
    """min(n) (points seen before, per stream) without a reduction for one stream."""
    return int(n[0]) if len(n) == 1 else int(n.min(initial=np.iinfo(np.int64).max))


def save_init(path, params: dict[str, np.ndarray], info: dict) -> None:
    """Write warm-start weights (one model's params, unbatched) and a description, as plain arrays."""
    np.savez(path, **{n: np.asarray(params[n]) for n in lstm.NAMES}, info=np.array(json.dumps(info)))


def load_init(path) -> dict[str, np.ndarray]:
    """Warm-start weights from a `fit` file; refuses pickled or object arrays with a clear error."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {n: f[n] for n in f.files}
    except ValueError as e:  # numpy's message for object arrays mentions allow_pickle
        raise ValueError(f"{path}: not a plain-array model file (pickled or object data refused)") from e
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz model file: {e}") from e
    missing = [n for n in lstm.NAMES if n not in arrays]
    if missing:
        raise ValueError(f"{path}: not a model file, missing {', '.join(missing)}")
    for n in lstm.NAMES:
        if arrays[n].dtype.kind != "f" or not np.isfinite(arrays[n]).all():
            raise ValueError(f"{path}: {n} is not an array of finite floats")
    return arrays


class Forecaster:
    """One stream's online LSTM forecaster (a fleet of one), with River's conventions.

    >>> model = Forecaster(hidden_size=8, window=4)
    >>> for t, y in enumerate([1.0, 2.0, 3.0, 4.0]):
    ...     model.learn_one(y, t)
    >>> len(model.forecast(3))
    3
    """

    def __init__(
        self,
        hidden_size: int = 32,
        window: int = 16,
        lr: float = Settings.lr,
        seed: int = 0,
        key: str = "",
        init: dict | str | None = None,
        **settings,
    ):
        """`init`: warm-start weights, a dict from `load_init` or the path of a `fit` file."""
        self.settings = Settings(hidden=hidden_size, window=window, lr=lr, seed=seed, **settings)
        self.key = key
        self.init = load_init(init) if isinstance(init, str | Path) else init
        self.fleet: Fleet | None = None
        self.last: Step | None = None
        self._row = np.zeros(1, np.int64)  # the fleet's only stream

    @property
    def n(self) -> int:
        return 0 if self.fleet is None else int(self.fleet.scaler.n[0])

    def learn_one(self, y: float | list[float], t: float | None = None) -> None:
        """Test-then-train on one point (a number, or a list for a multivariate stream)."""
        ys = np.asarray(y, np.float64).reshape(1, -1)
        if self.fleet is None:
            self.fleet = Fleet(self.settings, size=ys.shape[1], init=self.init)
            self.fleet.add(self.key)
        if ys.shape[1] != self.fleet.size:
            raise ValueError(f"point has {ys.shape[1]} values, the stream has {self.fleet.size}")
        # a number is checked without NumPy calls; count_nonzero is cheaper than .all()
        finite = math.isfinite(y) if isinstance(y, float) else np.count_nonzero(np.isfinite(ys)) == len(ys[0])
        if not finite:
            raise ValueError("non-finite value")
        ts = self.fleet.scaler.n[:1].astype(np.float64) if t is None else np.array([float(t)])
        self.last = self.fleet.learn(self._row, ys, ts)

    def forecast(self, horizon: int = 1) -> list:
        """The next `horizon` values (numbers, or lists for a multivariate stream)."""
        if self.fleet is None:
            raise RuntimeError("forecast before the first point")
        # one step ahead is the stored forecast: read it without building a horizon array
        out = self.fleet.fc[:1] if horizon == 1 else self.fleet.forecast(self._row, horizon)[0]
        return (out[:, 0] if self.fleet.size == 1 else out).tolist()
