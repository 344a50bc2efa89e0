"""An exact LSTM with a dense head and truncated backpropagation through time, in NumPy.

Every function works on a stack of B independent models (a leading stream axis), so one
stream and a fleet of thousands run the same lines. Shapes: B streams, k steps, I inputs,
H hidden units, O outputs. Gates are fused in PyTorch's order (i, f, g, o):

    z_t = W_ih x_t + W_hh h_{t-1} + b            (4H,)
    i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)
    y_t = W_out h_t + b_out                      (O,)

so `params` copy one-to-one into torch.nn.LSTM (weight_ih_l0, weight_hh_l0, bias_ih_l0 with
bias_hh_l0 = 0) and an nn.Linear head (weight, bias).

Speed comes from few NumPy calls per step (each costs ~0.5 µs, more than the arithmetic of one
stream): a flat row stores the gate weights as one block Wx = [W_ih^T; b; W_hh^T] (I+1+H, 4H)
and the head as Wy = [b_out; W_out^T] (1+H, O), so one matmul of [x_t, 1, h_{t-1}] gives all
gates with their bias, one matmul gives every gate gradient, and the buffers are time-major so
each step's operands are views. Making those views costs about as much as the steps' arithmetic
for one stream, so a call's buffers and views are made once per shape and reused (see `_lend`).
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

NAMES = ("W_ih", "W_hh", "b", "W_out", "b_out")

# np.dot and np.copyto without their __array_function__ dispatch: the same C functions, ~0.2 µs
# a call cheaper, which counts on one stream's vectors (some 40 calls an update)
_dot = getattr(np.dot, "_implementation", np.dot)
_copyto = getattr(np.copyto, "_implementation", np.copyto)


def shapes(input_size: int, hidden_size: int, output_size: int = 1) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter of one model."""
    H4 = 4 * hidden_size
    return {
        "W_ih": (H4, input_size),
        "W_hh": (H4, hidden_size),
        "b": (H4,),
        "W_out": (output_size, hidden_size),
        "b_out": (output_size,),
    }


def init_params(
    input_size: int, hidden_size: int, output_size: int, rng: np.random.Generator, dtype=np.float64
) -> dict[str, np.ndarray]:
    """PyTorch's init, uniform(-1/sqrt(H), 1/sqrt(H)), with the forget-gate bias at +1."""
    bound = 1.0 / np.sqrt(hidden_size)
    p = {
        n: rng.uniform(-bound, bound, s).astype(dtype)
        for n, s in shapes(input_size, hidden_size, output_size).items()
    }
    p["b"][:] = 0.0
    p["b"][hidden_size : 2 * hidden_size] = 1.0
    p["b_out"][:] = 0.0
    return p


def blocks(p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """{name: (B, *shape)} -> the fused blocks Wx (B, I+1+H, 4H) and Wy (B, 1+H, O), as copies."""
    Wx = np.concatenate((p["W_ih"].swapaxes(1, 2), p["b"][:, None], p["W_hh"].swapaxes(1, 2)), axis=1)
    Wy = np.concatenate((p["b_out"][:, None], p["W_out"].swapaxes(1, 2)), axis=1)
    return Wx, Wy


def _named(Wx: np.ndarray, Wy: np.ndarray, I: int) -> dict[str, np.ndarray]:
    """Views {name: (..., *shape)} into fused blocks."""
    return {
        "W_ih": Wx[..., :I, :].swapaxes(-1, -2),
        "W_hh": Wx[..., I + 1 :, :].swapaxes(-1, -2),
        "b": Wx[..., I, :],
        "W_out": Wy[..., 1:, :].swapaxes(-1, -2),
        "b_out": Wy[..., 0, :],
    }


class Layout:
    """Where each parameter lives in one flat row, so an optimizer updates a single array.

    A row is the block Wx (I+1+H, 4H) then the block Wy (1+H, O), both row-major.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int = 1):
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.shapes = shapes(input_size, hidden_size, output_size)
        self.size = sum(int(np.prod(s)) for s in self.shapes.values())
        self.x_shape = (input_size + 1 + hidden_size, 4 * hidden_size)
        self.y_shape = (1 + hidden_size, output_size)
        self.x_size = self.x_shape[0] * self.x_shape[1]

    def blocks(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Views (..., P) -> Wx (..., I+1+H, 4H), Wy (..., 1+H, O); no copies."""
        lead = flat.shape[:-1]
        Wx = flat[..., : self.x_size].reshape(*lead, *self.x_shape)
        return Wx, flat[..., self.x_size :].reshape(*lead, *self.y_shape)

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Parameter views into flat rows: (..., P) -> {name: (..., *shape)}; no copies."""
        return _named(*self.blocks(flat), self.input_size)

    def flatten(self, params: dict[str, np.ndarray], batch: int) -> np.ndarray:
        """{name: (B, *shape)} -> (B, P)."""
        Wx, Wy = blocks({n: np.reshape(params[n], (batch, *s)) for n, s in self.shapes.items()})
        return np.concatenate((Wx.reshape(batch, -1), Wy.reshape(batch, -1)), axis=1)


@dataclass
class Trace:
    """What backward needs from forward, time-major; states include the start state at index 0."""

    hx: np.ndarray  # (k+1, B, I+1+H)  row t = [x_t, 1, h_{t-1}]
    cs: np.ndarray  # (k+1, B, H)
    tcs: np.ndarray  # (k, B, H)       tanh(c_t)
    act: np.ndarray  # (k, B, 4H)      gate activations i, f, g, o

    @property
    def inputs(self) -> int:
        return self.hx.shape[2] - self.cs.shape[2] - 1

    @property
    def hs(self) -> np.ndarray:
        """(k+1, B, H): h_0 (the start state) .. h_k."""
        return self.hx[:, :, self.inputs + 1 :]


@lru_cache(maxsize=64)
def _gate_scale(H: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """sigmoid(z) = 0.5 * tanh(z / 2) + 0.5, so one tanh serves all four gates: act = tanh(S z) * S + T."""
    S = np.full(4 * H, 0.5, dtype)
    S[2 * H : 3 * H] = 1.0
    T = (1.0 - S) * (S != 1.0)
    S.flags.writeable = T.flags.writeable = False
    return S, T


_kept = threading.local()  # per thread: {(make, *shape): [(work, refs of its owner when free)]}
_SHAPES = 8  # shapes kept per thread, the least recently used dropped first


def _lend(make, *shape) -> tuple:
    """make(*shape) -> (owner, ...): a call's work arrays, and each step's operands as views of them.

    Made once per shape and lent again only when nothing returned by an earlier call still refers
    to the owner (its reference count is what the kept views alone give it), so no result is ever
    overwritten. Two per shape, so that a caller may still hold the previous result.
    """
    kept, key = _kept.__dict__, (make, *shape)
    works = kept.pop(key, [])
    kept[key] = works  # most recently used last
    for work, refs in works:
        if sys.getrefcount(work[0]) == refs:
            return work
    work = make(*shape)
    works[:] = [*works[-1:], (work, sys.getrefcount(work[0]))]
    if len(kept) > _SHAPES:
        del kept[next(iter(kept))]
    return work


def _carve(dtype: np.dtype, *shapes: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """(owner, *arrays): arrays of these shapes, each contiguous, as views into one owner buffer."""
    sizes = [math.prod(s) for s in shapes]
    owner = np.empty(sum(sizes), dtype)
    ends = itertools.accumulate(sizes)
    return owner, *(owner[e - n : e].reshape(s) for s, n, e in zip(shapes, sizes, ends, strict=True))


def _forward_work(B: int, k: int, I: int, H: int, dtype: np.dtype) -> tuple:
    """A forward's arrays (those of Trace, and i * g), the views each step reads and writes, and
    the gate scaling S, T (see `_gate_scale`)."""
    owner, hx, cs, tcs, act, ig = _carve(
        dtype, (k + 1, B, I + 1 + H), (k + 1, B, H), (k, B, H), (k, B, 4 * H), (B, H)
    )
    hx[:, :, I] = 1.0
    gates = [act[..., j * H : (j + 1) * H] for j in range(4)]
    state = cs[:k], cs[1:], tcs, hx[1:, :, I + 1 :]
    if B == 1:  # plain vectors: np.dot on 1-D operands is the cheapest call
        steps = zip(hx[:k, 0], act[:, 0], act[:, 0], *(v[:, 0] for v in (*gates, *state)), strict=True)
        ig = ig[0]
    else:  # the matmul wants (B, 1, .) rows; reshaped, not [:, None]: a 0 stride slows it down
        rows = hx[:k].reshape(k, B, 1, -1), act.reshape(k, B, 1, -1)
        steps = zip(*rows, act, *gates, *state, strict=True)
    inputs = hx[:k, :, :I], hx[0, :, I + 1 :], cs[0]
    S, T = _gate_scale(H, dtype)
    if B > 1:  # the scaling's operands shaped like the pre-activations, for the cheapest products
        S, T = np.broadcast_to(S, (B, 4 * H)).copy(), np.broadcast_to(T, (B, 4 * H)).copy()
    return owner, (hx, cs, tcs, act), list(steps), ig, inputs, (S, T)


def run(Wx: np.ndarray, xs: np.ndarray, h0: np.ndarray, c0: np.ndarray) -> Trace:
    """The recurrence of B models with gate blocks Wx over windows xs (B, k, I) from (h0, c0)."""
    B, k, I = xs.shape
    H = h0.shape[-1]
    _, arrays, steps, ig, (x_in, h_in, c_in), (S, T) = _lend(_forward_work, B, k, I, H, xs.dtype)
    _copyto(x_in, xs.swapaxes(0, 1))
    _copyto(h_in, h0)
    _copyto(c_in, c0)
    # The sigmoid's 1/2 goes into one stream's weights once per window, or into the 4H
    # pre-activations of each step, which is cheaper for one step or many streams (copying a
    # block's weights costs more than k scalings); S is a power of two, so both give the same bits.
    prescale = B == 1 and k > 1
    Ws = Wx * S if prescale else Wx
    mm, W = (_dot, Ws[0]) if B == 1 else (np.matmul, Ws)
    mul, add, tanh = np.multiply, np.add, np.tanh
    for x, a_out, a, i, f, g, o, cp, c, tc, h in steps:
        mm(x, W, a_out)
        if not prescale:
            mul(a, S, a)
        tanh(a, a)
        mul(a, S, a)
        add(a, T, a)
        mul(f, cp, c)
        mul(i, g, ig)
        add(c, ig, c)
        tanh(c, tc)
        mul(o, tc, h)
    hx, cs, tcs, act = arrays
    return Trace(hx[:], cs[:], tcs[:], act[:])  # new views: while they live, the arrays are not lent again


def output(Wy: np.ndarray, tr: Trace) -> np.ndarray:
    """The last step's outputs (B, O): [1, h_k] @ Wy."""
    return _head(Wy, tr.hx[-1, :, tr.inputs :])


def _head(Wy: np.ndarray, hk: np.ndarray) -> np.ndarray:
    """hk (B, 1+H) = [1, h_k] -> outputs (B, O)."""
    if len(hk) == 1:
        return _dot(hk[0], Wy[0])[None]
    return (hk[:, None] @ Wy)[:, 0]


def _factors(
    tr: Trace, A: np.ndarray, ds: np.ndarray, F: np.ndarray, UV: np.ndarray, WF: np.ndarray, one: np.ndarray
) -> None:
    """Per step, what dc_t and dh_t are multiplied by, into F (5, k, B, H) = (u_i, u_f, u_g, v, w):

    dz_(i, f, g) = dc_t * u with u = (g i', c_{t-1} f', i g'),  dz_o = dh_t * v with v = tanh(c_t) o',
    dc_t = f_{t+1} dc_{t+1} + dh_t * w with w = o tanh'(c_t),

    where ' is each activation's derivative as a function of its pre-activation. The activations
    are first copied gate-major into A (4, k, B, H) (ds alike), so that each product below is one
    pass over contiguous memory rather than k * B rows of H (short rows are what products cost).
    Then each step's factors are copied side by side, as `_backprop` multiplies them:
    UV (k, B, 4, H) = (u_i, u_f, u_g, v) and WF (k, B, 2, H) = (w_t, f_{t+1}) (f_{k+1} stays 0).
    one: 1 as a 0-d array of the dtype (NumPy takes it faster than a Python number).
    """
    k, B, H4 = tr.act.shape
    _copyto(A, tr.act.reshape(k, B, 4, H4 // 4).transpose(2, 0, 1, 3))
    g = A[2]
    np.subtract(one, A, ds)
    ds *= A  # sigmoid' = s (1 - s) for i, f and o (the g block is unused)
    np.multiply(g, ds[0], F[0])
    np.multiply(tr.cs[:k], ds[1], F[1])
    np.multiply(tr.tcs, ds[3], F[3])
    gt = F[2::2]  # (g', tanh'(c_t)) = 1 - (g, tanh(c_t))**2, then times (i, o)
    np.multiply(g, g, gt[0])
    np.multiply(tr.tcs, tr.tcs, gt[1])
    np.subtract(one, gt, gt)
    gt *= A[0::3]
    _copyto(UV, F[:4].transpose(1, 2, 0, 3))
    _copyto(WF[:, :, 0], F[4])
    _copyto(WF[:-1, :, 1], A[1, 1:])


def _backward_work(B: int, k: int, H: int, dtype: np.dtype) -> tuple:
    """A backward's arrays and the views each step uses, walking back in time: gate-major
    activations A, the factors F and their per-step copies UV and WF (see `_factors`), dz, and
    each step's row [dc_t, dc_t, dc_t, dh_t, dc_{t+1}] (B, 5H): the matmul writes dh_{t-1} into
    row t-1, dc_t goes into row t-1's last H and is copied to the front of row t. One stream's
    rows overlap by H (row t's front is row t-1's end), so only two copies are left to make.
    Row -1 receives dL/dh0; dc_{k+1} = 0. The derivatives ds use dz's memory: dz comes later."""
    rows = (k + 1) * 4 * H + H if B == 1 else (k + 1) * B * 5 * H
    owner, A, F, UV, WF, dz, P, Q = _carve(
        dtype, (4, k, B, H), (5, k, B, H), (k, B, 4, H), (k, B, 2, H), (k, B, 4 * H), (B, 2 * H), (rows,)
    )
    WF[-1, :, 1] = 0.0
    ds = dz.reshape(4, k, B, H)
    wf, uv = WF.reshape(k, B, 2 * H), UV.reshape(k, B, 4 * H)
    if B == 1:  # plain vectors, as in run
        row = [Q[4 * H * r : 4 * H * r + 5 * H] for r in range(k + 1)]  # step t's is row[t + 1]
        per_step = [(r[3 * H :], r[:H], r[H : 3 * H].reshape(2, H), r[:H], r[: 4 * H]) for r in row[1:]]
        dh_out = [r[3 * H : 4 * H] for r in row[:-1]]
        steps = zip(per_step, wf[:, 0], uv[:, 0], dz[:, 0], dz[:, 0], dh_out, strict=True)
        P, dc1 = P[0], row[1][:H]
    else:  # the matmul wants column vectors
        row = Q.reshape(k + 1, B, 5 * H)
        per_step = [
            (r[:, 3 * H :], p[:, 4 * H :], r[:, : 3 * H].reshape(B, 3, H), p[:, None, 4 * H :], r[:, : 4 * H])
            for p, r in itertools.pairwise(row)
        ]
        dh_out = row[:-1, :, 3 * H : 4 * H].reshape(k, B, H, 1)
        steps = zip(per_step, wf, uv, dz, dz.reshape(k, B, -1, 1), dh_out, strict=True)
        dc1 = row[0, :, 4 * H :]
    row[-1][..., 4 * H :] = 0.0  # dc_{k+1}
    steps = [(*q, *rest) for q, *rest in steps]
    factors = A, ds, F, UV, WF, np.ones((), dtype)
    return owner, factors, dz, steps[::-1], (P, row[0][..., 3 * H : 4 * H], dc1)


def backprop(
    Wx: np.ndarray,
    tr: Trace,
    dh_last: np.ndarray,
    dhs: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backpropagate dL/dh_k = dh_last (B, H), plus dhs (k, B, H) into every h_t if given.

    Returns (dWx (B, I+1+H, 4H), written into `out` if given, dL/dh0, dL/dc0).
    """
    dWx, dh0, dc1 = _backprop(Wx, tr, dh_last, dhs, out)
    B, H = len(dWx), tr.cs.shape[2]
    dc0 = np.multiply(dc1.reshape(B, H), tr.act[0, :, H : 2 * H])  # dc_0 = f_1 dc_1
    return dWx, dh0.reshape(B, -1).copy(), dc0


def _backprop(
    Wx: np.ndarray, tr: Trace, dh_last: np.ndarray, dhs: np.ndarray | None, out: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`backprop`, with dL/dh0 and the first step's dc (dL/dc0 before its forget gate) left in its
    work arrays (for a caller that drops them)."""
    k, B, H4 = tr.act.shape
    H = H4 // 4
    _, factors, dz, steps, (P, dh0, dc1) = _lend(_backward_work, B, k, H, tr.act.dtype)
    _factors(tr, *factors)
    dh = steps[0][0][..., :H]
    _copyto(dh, dh_last[0] if B == 1 else dh_last)
    W_hh_T = Wx[:, tr.inputs + 1 :]  # (B, H, 4H): dh = W_hh^T dz, a product with contiguous rows
    mm, W = (_dot, W_hh_T[0]) if B == 1 else (np.matmul, W_hh_T)
    extra = [None] * k if dhs is None else dhs[::-1, 0] if B == 1 else dhs[::-1]  # skip adding zeros
    mul, add, copy = np.multiply, np.add, _copyto
    Pw, Pf = P[..., :H], P[..., H:]
    for step, et in zip(steps, extra, strict=True):
        dh_dcn, dc, dc_rep, dc_new, dc_dh, wf, uv, dzt, dz_col, dh_out = step
        if et is not None:
            dh = dh_dcn[..., :H]
            add(dh, et, dh)
        mul(dh_dcn, wf, P)  # (dh_t w_t, dc_{t+1} f_{t+1})
        add(Pf, Pw, dc)  # dc_t
        copy(dc_rep, dc_new)  # dz = (dc_t, dc_t, dc_t, dh_t) * (u_i, u_f, u_g, v)
        mul(dc_dh, uv, dzt)
        mm(W, dz_col, dh_out)
    if B == 1:
        dWx = np.empty((1, *Wx.shape[1:]), Wx.dtype) if out is None else out
        _dot(tr.hx[:k, 0].T, dz[:, 0], dWx[0])
        return dWx, dh0, dc1
    dWx = np.matmul(tr.hx[:k].transpose(1, 2, 0), dz.swapaxes(0, 1), out=out)
    return dWx, dh0, dc1


def forward(
    p: dict[str, np.ndarray], xs: np.ndarray, h0: np.ndarray, c0: np.ndarray
) -> tuple[np.ndarray, Trace]:
    """Run B models over their windows xs (B, k, I) from (h0, c0) (B, H); outputs (B, k, O)."""
    Wx, Wy = blocks(p)
    tr = run(Wx, xs, h0, c0)
    return tr.hx[1:, :, xs.shape[2] :].swapaxes(0, 1) @ Wy, tr


def backward(
    p: dict[str, np.ndarray], tr: Trace, dys: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Gradients of a loss whose gradient w.r.t. the outputs is dys (B, k, O), through all k steps.

    Returns ({name: (B, *shape)}, dL/dh0, dL/dc0).
    """
    Wx, Wy = blocks(p)
    dhs = (dys @ Wy[:, 1:].swapaxes(1, 2)).swapaxes(0, 1)  # (k, B, H)
    dWx, dh0, dc0 = backprop(Wx, tr, np.zeros_like(dhs[0]), dhs)
    dWy = tr.hx[1:, :, tr.inputs :].transpose(1, 2, 0) @ dys
    return _named(dWx, dWy, tr.inputs), dh0, dc0


def mse(ys: np.ndarray, targets: np.ndarray, every_step: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-model MSE (B,) and its gradient w.r.t. ys (B, k, O).

    targets: (B, O) for the last step only, or (B, k, O) with every_step.
    """
    dys = np.zeros_like(ys)
    if every_step:
        err = ys - targets
        dys[:] = 2.0 * err / (err.shape[1] * err.shape[2])
        return np.mean(err * err, axis=(1, 2)), dys
    err = ys[:, -1] - targets
    dys[:, -1] = 2.0 * err / err.shape[1]
    return np.mean(err * err, axis=1), dys


def last_step_grads(
    Wx: np.ndarray, Wy: np.ndarray, tr: Trace, targets: np.ndarray, gx: np.ndarray, gy: np.ndarray
) -> None:
    """Gradients of mean((y_k - targets)**2) (targets (B, O)) into gx (B, I+1+H, 4H), gy (B, 1+H, O).

    Only the last output is scored, so only one dL/dh enters the backward pass.
    """
    hk = tr.hx[-1, :, tr.inputs :]  # (B, 1+H) = [1, h_k]
    dy = (_head(Wy, hk) - targets) * (2.0 / targets.shape[1])  # not in place: dearer on one value
    dh = _dot(dy, Wy[0, 1:].T) if len(dy) == 1 else (dy[:, None] @ Wy[:, 1:].swapaxes(1, 2))[:, 0]
    _backprop(Wx, tr, dh, None, gx)
    np.multiply(hk[:, :, None], dy[:, None], gy)


class LSTM:
    """One LSTM with a dense head; params is a dict of arrays like a state_dict."""

    def __init__(
        self, input_size: int, hidden_size: int, output_size: int = 1, seed: int = 0, dtype=np.float64
    ):
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.dtype = np.dtype(dtype)
        self.layout = Layout(input_size, hidden_size, output_size)
        self.flat = np.empty(self.layout.size, self.dtype)
        self.params = self.layout.views(self.flat)
        rng = np.random.default_rng(seed)
        for n, v in init_params(input_size, hidden_size, output_size, rng, self.dtype).items():
            self.params[n][...] = v

    def _batched(self) -> dict[str, np.ndarray]:
        return {n: v[None] for n, v in self.params.items()}

    def _state(self, h0: np.ndarray | None, c0: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        zero = np.zeros(self.hidden_size, self.dtype)
        h0 = zero if h0 is None else np.asarray(h0, self.dtype)
        c0 = zero if c0 is None else np.asarray(c0, self.dtype)
        return h0[None], c0[None]

    def forward(self, xs: np.ndarray, h0: np.ndarray | None = None, c0: np.ndarray | None = None):
        """xs (k, I) -> (outputs (k, O), h_k, c_k, trace)."""
        h0b, c0b = self._state(h0, c0)
        ys, tr = forward(self._batched(), np.asarray(xs, self.dtype)[None], h0b, c0b)
        return ys[0], tr.hs[-1, 0], tr.cs[-1, 0], tr

    def backward(self, tr: Trace, dys: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """dys (k, O) -> (grads with the keys of params, dL/dh0, dL/dc0)."""
        grads, dh0, dc0 = backward(self._batched(), tr, np.asarray(dys, self.dtype)[None])
        return {n: v[0] for n, v in grads.items()}, dh0[0], dc0[0]

    def loss_and_grads(
        self,
        xs: np.ndarray,
        y: np.ndarray,
        h0: np.ndarray | None = None,
        c0: np.ndarray | None = None,
        every_step: bool = False,
    ) -> tuple[float, dict[str, np.ndarray]]:
        """loss = mean((W_out h_k + b_out - y)**2) and its gradient for every parameter.

        xs (k, I), y (O,); with every_step, y is (k, O) and every step's output is scored.
        """
        h0b, c0b = self._state(h0, c0)
        p = self._batched()
        ys, tr = forward(p, np.asarray(xs, self.dtype)[None], h0b, c0b)
        loss, dys = mse(ys, np.asarray(y, self.dtype)[None], every_step)
        grads, _, _ = backward(p, tr, dys)
        return float(loss[0]), {n: v[0] for n, v in grads.items()}
