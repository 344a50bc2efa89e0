import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmstream import lstm
from lstmstream.lstm import LSTM
from lstmstream.optim import Adam


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-3)))


def numeric_grad(f, x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


@settings(max_examples=25, deadline=None)
@given(
    I=st.integers(1, 3),
    H=st.integers(1, 16),
    O=st.integers(1, 3),
    k=st.integers(1, 20),
    seed=st.integers(0, 2**16),
    every_step=st.booleans(),
)
def test_gradients_match_finite_differences(I, H, O, k, seed, every_step):
    rng = np.random.default_rng(seed)
    m = LSTM(I, H, O, seed=seed)
    xs = rng.normal(size=(k, I))
    y = rng.normal(size=(k, O) if every_step else (O,))
    h0, c0 = rng.normal(size=H) * 0.5, rng.normal(size=H) * 0.5

    def loss() -> float:
        return m.loss_and_grads(xs, y, h0, c0, every_step=every_step)[0]

    _, grads = m.loss_and_grads(xs, y, h0, c0, every_step=every_step)
    assert set(grads) == set(m.params)
    for name, p in m.params.items():
        assert grads[name].shape == p.shape
        assert rel_err(grads[name], numeric_grad(loss, p)) < 1e-6, name

    ys, _, _, tr = m.forward(xs, h0, c0)
    _, dys = lstm.mse(ys[None], y[None], every_step)
    _, dh0, dc0 = m.backward(tr, dys[0])
    assert rel_err(dh0, numeric_grad(loss, h0)) < 1e-6
    assert rel_err(dc0, numeric_grad(loss, c0)) < 1e-6


def test_params_are_pytorch_shaped_with_forget_bias_one():
    m = LSTM(3, 5, 2, seed=1)
    assert {n: v.shape for n, v in m.params.items()} == {
        "W_ih": (20, 3),
        "W_hh": (20, 5),
        "b": (20,),
        "W_out": (2, 5),
        "b_out": (2,),
    }
    assert np.all(m.params["b"][5:10] == 1.0) and np.all(m.params["b"][:5] == 0.0)
    assert np.abs(m.params["W_hh"]).max() <= 1 / np.sqrt(5)
    assert np.array_equal(LSTM(3, 5, 2, seed=1).params["W_ih"], m.params["W_ih"])


def test_gates_follow_the_equations():
    """One step by hand, in PyTorch's gate order (i, f, g, o)."""
    rng = np.random.default_rng(3)
    m = LSTM(2, 4, 1, seed=3)
    x, h, c = rng.normal(size=2), rng.normal(size=4), rng.normal(size=4)
    p = m.params
    z = p["W_ih"] @ x + p["W_hh"] @ h + p["b"]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, g, o = sig(z[0:4]), sig(z[4:8]), np.tanh(z[8:12]), sig(z[12:16])
    c1 = f * c + i * g
    h1 = o * np.tanh(c1)
    ys, h_k, c_k, _ = m.forward(x[None], h, c)
    np.testing.assert_allclose(c_k, c1, rtol=1e-12)
    np.testing.assert_allclose(h_k, h1, rtol=1e-12)
    np.testing.assert_allclose(ys[0], p["W_out"] @ h1 + p["b_out"], rtol=1e-12)


def test_forward_over_two_windows_equals_forward_over_their_concatenation():
    rng = np.random.default_rng(4)
    m = LSTM(2, 6, 1, seed=4)
    a, b = rng.normal(size=(5, 2)), rng.normal(size=(7, 2))
    ys_ab, h_ab, c_ab, _ = m.forward(np.concatenate([a, b]))
    ys_a, h_a, c_a, _ = m.forward(a)
    ys_b, h_b, c_b, _ = m.forward(b, h_a, c_a)
    np.testing.assert_allclose(ys_ab, np.concatenate([ys_a, ys_b]), rtol=1e-12)
    np.testing.assert_allclose(h_ab, h_b, rtol=1e-12)
    np.testing.assert_allclose(c_ab, c_b, rtol=1e-12)


def test_a_second_forward_does_not_disturb_the_first_trace():
    rng = np.random.default_rng(5)
    m = LSTM(1, 3, 1, seed=5)
    xs1, xs2 = rng.normal(size=(4, 1)), rng.normal(size=(4, 1))
    ys1, _, _, tr1 = m.forward(xs1)
    g_before = m.backward(tr1, np.ones_like(ys1))[0]
    m.forward(xs2)
    g_after = m.backward(tr1, np.ones_like(ys1))[0]
    for n in g_before:
        np.testing.assert_array_equal(g_before[n], g_after[n])


def test_batched_rows_are_independent():
    rng = np.random.default_rng(6)
    models = [LSTM(2, 5, 1, seed=s) for s in range(3)]
    xs = rng.normal(size=(3, 6, 2))
    stacked = {n: np.stack([m.params[n] for m in models]) for n in lstm.NAMES}
    ys, _ = lstm.forward(stacked, xs, np.zeros((3, 5)), np.zeros((3, 5)))
    for j, m in enumerate(models):
        np.testing.assert_allclose(ys[j], m.forward(xs[j])[0], rtol=1e-12)


def test_float32_stays_close_to_float64():
    rng = np.random.default_rng(7)
    xs, y = rng.normal(size=(16, 2)), rng.normal(size=1)
    m64, m32 = LSTM(2, 32, 1, seed=7), LSTM(2, 32, 1, seed=7, dtype=np.float32)
    l64, g64 = m64.loss_and_grads(xs, y)
    l32, g32 = m32.loss_and_grads(xs.astype(np.float32), y.astype(np.float32))
    assert g32["W_hh"].dtype == np.float32
    assert abs(l64 - l32) < 1e-4
    for n in g64:
        np.testing.assert_allclose(g32[n], g64[n], atol=1e-4)


def create_sequences(data: np.ndarray, time_steps: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's windows: each run of `time_steps` values and the value after it."""
    x = np.stack([data[i : i + time_steps] for i in range(len(data) - time_steps)])
    return x[..., None], data[time_steps:, None]


def test_the_notebook_example_now_predicts_seven():
    """Train on 1..10 in windows of 6, predict after 1..6: the notebook said 7.19."""
    train = np.arange(1, 11, dtype=float)
    mu, sd = train.mean(), train.std()
    X, Y = create_sequences((train - mu) / sd)
    m = LSTM(1, 8, 1, seed=0)
    opt = Adam(lr=1e-2)
    state = opt.init_state(1, m.layout.size)
    for _epoch in range(300):
        for x, y in zip(X, Y, strict=True):
            _, grads = m.loss_and_grads(x, y)
            opt.step(m.flat[None], m.layout.flatten({n: g[None] for n, g in grads.items()}, 1), state)
    ys, *_ = m.forward((np.arange(1, 7.0)[:, None] - mu) / sd)
    assert ys[-1, 0] * sd + mu == pytest.approx(7.0, abs=0.05)


@pytest.mark.parametrize("B", [1, 3])
def test_results_held_by_the_caller_survive_later_calls(B):
    """Work arrays are reused across calls, but never while an earlier result still refers to them."""
    rng = np.random.default_rng(8)
    layout = lstm.Layout(2, 5, 1)
    w = rng.normal(size=(B, layout.size)) * 0.5
    Wx = layout.blocks(w)[0]
    h0, c0 = rng.normal(size=(B, 5)), rng.normal(size=(B, 5))
    tr = lstm.run(Wx, rng.normal(size=(B, 4, 2)), h0, c0)
    h_last, act = tr.hs[-1], tr.act  # views into the trace, the trace itself dropped
    kept = h_last.copy(), act.copy()
    del tr
    grads = lstm.backprop(Wx, lstm.run(Wx, rng.normal(size=(B, 4, 2)), h0, c0), h0)
    grads_kept = [g.copy() for g in grads]
    for _ in range(3):
        tr = lstm.run(Wx, rng.normal(size=(B, 4, 2)), h0, c0)
        lstm.backprop(Wx, tr, c0)
    np.testing.assert_array_equal(h_last, kept[0])
    np.testing.assert_array_equal(act, kept[1])
    for g, g_kept in zip(grads, grads_kept, strict=True):
        np.testing.assert_array_equal(g, g_kept)


def test_a_stacked_update_equals_each_stream_alone():
    """One window and last-step gradient for 3 streams at once, and for each stream by itself."""
    rng = np.random.default_rng(9)
    layout = lstm.Layout(3, 6, 1)
    w = rng.normal(size=(3, layout.size)) * 0.5
    xs, h0, c0, y = (
        rng.normal(size=(3, 7, 3)),
        rng.normal(size=(3, 6)),
        rng.normal(size=(3, 6)),
        rng.normal(size=(3, 1)),
    )
    g = np.empty_like(w)
    tr = lstm.run(layout.blocks(w)[0], xs, h0, c0)
    lstm.last_step_grads(*layout.blocks(w), tr, y, *layout.blocks(g))
    for b in range(3):
        g1 = np.empty_like(w[b : b + 1])
        Wx, Wy = layout.blocks(w[b : b + 1])
        tr1 = lstm.run(Wx, xs[b : b + 1], h0[b : b + 1], c0[b : b + 1])
        lstm.last_step_grads(Wx, Wy, tr1, y[b : b + 1], *layout.blocks(g1))
        np.testing.assert_allclose(tr1.hs[:, 0], tr.hs[:, b], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(g1[0], g[b], rtol=1e-10, atol=1e-14)


def test_huge_inputs_saturate_the_gates_without_warnings():
    m = LSTM(1, 4, 1, seed=10)
    with np.errstate(all="raise"):
        ys, h, c, _ = m.forward(np.array([[1e30], [-1e30], [3.0]]))
        _, grads = m.loss_and_grads(np.array([[1e30], [-1e30]]), np.array([0.5]))
    assert np.isfinite(ys).all() and np.isfinite(h).all() and np.isfinite(c).all()
    assert all(np.isfinite(g).all() for g in grads.values())


@pytest.mark.parametrize("B", [1, 4])
def test_backprop_through_strided_views_equals_backprop_through_the_runs_own_trace(B):
    """Fleet(recompute=False) hands backprop stream-major rings swapped to time-major views."""
    rng = np.random.default_rng(11)
    layout = lstm.Layout(2, 5, 1)
    Wx = layout.blocks(rng.normal(size=(B, layout.size)) * 0.5)[0]
    tr = lstm.run(Wx, rng.normal(size=(B, 6, 2)), rng.normal(size=(B, 5)), rng.normal(size=(B, 5)))
    rings = [np.zeros((B, len(a), a.shape[2] + 1)) for a in (tr.hx, tr.cs, tr.tcs, tr.act)]
    for ring, a in zip(rings, (tr.hx, tr.cs, tr.tcs, tr.act), strict=True):
        ring[..., :-1] = a.swapaxes(0, 1)
    strided = lstm.Trace(*(r[..., :-1].swapaxes(0, 1) for r in rings))
    assert not strided.act.flags.c_contiguous and not strided.cs.flags.c_contiguous
    dh, dhs = rng.normal(size=(B, 5)), rng.normal(size=(6, B, 5))
    want = [g.copy() for g in lstm.backprop(Wx, tr, dh, dhs)]
    for got, g in zip(lstm.backprop(Wx, strided, dh, dhs), want, strict=True):
        np.testing.assert_array_equal(got, g)
