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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NAMES = ("W_ih", "W_hh", "b", "W_out", "b_out")


def _gate_scale(H: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """sigmoid(z) = 0.5 * tanh(z / 2) + 0.5, so one tanh serves all four gates: act = tanh(S z) * S + T."""
    S = np.full(4 * H, 0.5, dtype)
    S[2 * H : 3 * H] = 1.0
    return S, (1.0 - S).astype(dtype) * (S != 1.0)


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


class Layout:
    """Where each parameter lives in one flat row, so an optimizer updates a single array."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int = 1):
        self.shapes = shapes(input_size, hidden_size, output_size)
        self.sizes = {n: int(np.prod(s)) for n, s in self.shapes.items()}
        self.size = sum(self.sizes.values())

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Parameter views into flat rows: (..., P) -> {name: (..., *shape)}; no copies."""
        lead, out, at = flat.shape[:-1], {}, 0
        for n in NAMES:
            out[n] = flat[..., at : at + self.sizes[n]].reshape(*lead, *self.shapes[n])
            at += self.sizes[n]
        return out

    def flatten(self, params: dict[str, np.ndarray], batch: int) -> np.ndarray:
        """{name: (B, *shape)} -> (B, P)."""
        return np.concatenate([params[n].reshape(batch, -1) for n in NAMES], axis=1)


@dataclass
class Trace:
    """What backward needs from forward; hs/cs include the start state at index 0."""

    xs: np.ndarray  # (B, k, I)
    hs: np.ndarray  # (B, k+1, H)
    cs: np.ndarray  # (B, k+1, H)
    tcs: np.ndarray  # (B, k, H)    tanh(c_t)
    act: np.ndarray  # (B, k, 4H)   gate activations i, f, g, o


def forward(
    p: dict[str, np.ndarray], xs: np.ndarray, h0: np.ndarray, c0: np.ndarray
) -> tuple[np.ndarray, Trace]:
    """Run B models over their windows xs (B, k, I) from (h0, c0) (B, H); outputs (B, k, O)."""
    B, k, _ = xs.shape
    H = h0.shape[-1]
    S, T = _gate_scale(H, xs.dtype)
    zx = (xs @ p["W_ih"].transpose(0, 2, 1) + p["b"][:, None, :]) * S  # (B, k, 4H): the whole window at once
    W = p["W_hh"].transpose(0, 2, 1) * S  # (B, H, 4H)
    S, T = np.broadcast_to(S, (B, 4 * H)).copy(), np.broadcast_to(T, (B, 4 * H)).copy()
    hs = np.empty((B, k + 1, H), xs.dtype)
    cs = np.empty((B, k + 1, H), xs.dtype)
    tcs = np.empty((B, k, H), xs.dtype)
    act = np.empty((B, k, 4 * H), xs.dtype)
    i, f, g, o = (act[:, :, j * H : (j + 1) * H] for j in range(4))
    hs[:, 0], cs[:, 0] = h0, c0
    for t in range(k):
        a = act[:, t]
        np.matmul(hs[:, t, None], W, out=act[:, t, None])
        a += zx[:, t]
        np.tanh(a, out=a)
        a *= S
        a += T
        c = cs[:, t + 1]
        np.multiply(f[:, t], cs[:, t], out=c)
        c += i[:, t] * g[:, t]
        np.tanh(c, out=tcs[:, t])
        np.multiply(o[:, t], tcs[:, t], out=hs[:, t + 1])
    ys = hs[:, 1:] @ p["W_out"].transpose(0, 2, 1) + p["b_out"][:, None, :]
    return ys, Trace(xs, hs, cs, tcs, act)


def backward(
    p: dict[str, np.ndarray], tr: Trace, dys: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Gradients of a loss whose gradient w.r.t. the outputs is dys (B, k, O), through all k steps.

    Returns ({name: (B, *shape)}, dL/dh0, dL/dc0).
    """
    B, k, H4 = tr.act.shape
    H = H4 // 4
    a = tr.act
    i, f, g, o = (a[:, :, j * H : (j + 1) * H] for j in range(4))
    dpre = a * (1.0 - a)  # sigmoid' for i, f, o ...
    dpre[:, :, 2 * H : 3 * H] = 1.0 - g * g  # ... and tanh' for g
    # dz_{i,f,g} = dc * (g, c_{t-1}, i) * act';  dz_o = dh * tanh(c_t) * o';  dc += dh * o * tanh'(c_t)
    u = np.stack((g, tr.cs[:, :k], i), axis=2) * dpre[:, :, : 3 * H].reshape(B, k, 3, H)
    v = tr.tcs * dpre[:, :, 3 * H :]
    w = o * (1.0 - tr.tcs * tr.tcs)
    dhs = dys @ p["W_out"]  # (B, k, H)
    dz = np.empty((B, k, H4), a.dtype)
    dz_ifg = dz.reshape(B, k, 4, H)[:, :, :3]
    W_hh = p["W_hh"]
    dh = np.zeros((B, H), a.dtype)
    dc = np.zeros((B, H), a.dtype)
    for t in range(k - 1, -1, -1):
        dh += dhs[:, t]
        dc += dh * w[:, t]
        np.multiply(dc[:, None], u[:, t], out=dz_ifg[:, t])
        np.multiply(dh, v[:, t], out=dz[:, t, 3 * H :])
        dh = (dz[:, t, None] @ W_hh)[:, 0]
        dc *= f[:, t]
    dz_T = dz.transpose(0, 2, 1)
    grads = {
        "W_ih": dz_T @ tr.xs,
        "W_hh": dz_T @ tr.hs[:, :k],
        "b": dz.sum(axis=1),
        "W_out": dys.transpose(0, 2, 1) @ tr.hs[:, 1:],
        "b_out": dys.sum(axis=1),
    }
    return grads, dh, dc


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
        return ys[0], tr.hs[0, -1], tr.cs[0, -1], tr

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
