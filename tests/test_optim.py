import numpy as np
import pytest

from lstmstream.optim import SGD, Adam, clip


def test_adam_matches_a_hand_worked_two_step_example():
    w = np.array([[1.0, -2.0]])
    opt = Adam(lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    state = opt.init_state(1, 2)
    opt.step(w, np.array([[0.5, -1.0]]), state)
    # step 1: m = 0.1 g, v = 0.001 g^2, m_hat = g, v_hat = g^2 -> w -= 0.1 * g / (|g| + eps)
    np.testing.assert_allclose(w, [[0.9, -1.9]], rtol=1e-7)
    opt.step(w, np.array([[0.25, 0.5]]), state)
    m = 0.9 * np.array([0.05, -0.1]) + 0.1 * np.array([0.25, 0.5])
    v = 0.999 * np.array([0.00025, 0.001]) + 0.001 * np.array([0.0625, 0.25])
    step = 0.1 * (m / (1 - 0.9**2)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
    after_one = np.array([1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 + 0.1 * 1.0 / (1.0 + 1e-8)])
    np.testing.assert_allclose(w[0], after_one - step, rtol=1e-12)
    assert state["t"][0] == 2


def test_adam_decay_shrinks_the_step_as_one_over_root_t_down_to_min_lr():
    # a constant gradient makes Adam's bias-corrected direction exactly 1: each step is the step size
    steps = {}
    for decay in (None, 10.0):
        opt, w = Adam(lr=0.1, decay=decay, min_lr=0.05), np.zeros((1, 1))
        state = opt.init_state(1, 1)
        steps[decay] = []
        for _ in range(30):
            before = w[0, 0]
            opt.step(w, np.ones((1, 1)), state)
            steps[decay].append(before - w[0, 0])
    t = np.arange(1, 31)
    np.testing.assert_allclose(steps[None], np.full(30, 0.1), rtol=1e-6)
    np.testing.assert_allclose(steps[10.0], np.maximum(0.1 / np.sqrt(1.0 + t / 10.0), 0.05), rtol=1e-6)
    assert steps[10.0][-1] == pytest.approx(0.05)  # the floor is reached (t = 30 = 3 * decay)


def test_clip_caps_the_global_norm_per_row():
    g = np.array([[3.0, 4.0], [0.3, 0.4]])
    clipped, norms = clip(g, 1.0)
    np.testing.assert_allclose(norms, [5.0, 0.5])
    np.testing.assert_allclose(np.linalg.norm(clipped, axis=1), [1.0, 0.5])
    np.testing.assert_array_equal(clip(g, None)[0], g)


@pytest.mark.parametrize("opt", [Adam(lr=0.1), SGD(lr=0.1)])
def test_a_non_finite_gradient_leaves_its_row_untouched(opt):
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    state = opt.init_state(2, 2)
    ok = opt.step(w, np.array([[np.nan, 1.0], [1.0, 1.0]]), state)
    assert ok.tolist() == [False, True]
    np.testing.assert_array_equal(w[0], [1.0, 2.0])
    assert not np.array_equal(w[1], [3.0, 4.0])
    assert state["t"].tolist() == [0, 1]
    for a in state.values():
        assert np.isfinite(a).all()


def test_sgd_steps_against_the_gradient():
    w = np.array([[1.0]])
    SGD(lr=0.5).step(w, np.array([[2.0]]), {"t": np.zeros(1, np.int64)})
    assert w[0, 0] == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size", [0.01, 10.0])  # gradient norms below and above max_norm
def test_one_row_steps_exactly_like_the_same_row_in_a_batch(dtype, size):
    """The single-row path (factors as scalars) and the batched one (factor columns) agree bit for bit."""
    rng = np.random.default_rng(7)
    opt = Adam(lr=0.01, max_norm=1.0)
    w = rng.standard_normal((3, 50)).astype(dtype)
    alone, batch = w[1:2].copy(), w.copy()
    s_alone, s_batch = opt.init_state(1, 50, dtype), opt.init_state(3, 50, dtype)
    for _ in range(5):
        g = (size * rng.standard_normal((3, 50))).astype(dtype)
        assert opt.step(alone, g[1:2].copy(), s_alone).tolist() == [True]
        opt.step(batch, g, s_batch)
    np.testing.assert_array_equal(alone[0], batch[1])
    for n in ("m", "v", "t"):
        np.testing.assert_array_equal(s_alone[n][0], s_batch[n][1])


def test_a_single_row_with_a_non_finite_gradient_is_skipped():
    opt = Adam(lr=0.1, max_norm=1.0)
    w, state = np.ones((1, 3)), opt.init_state(1, 3)
    assert opt.step(w, np.array([[1.0, np.inf, 0.0]]), state).tolist() == [False]
    np.testing.assert_array_equal(w, np.ones((1, 3)))
    assert state["t"][0] == 0 and not state["m"].any() and not state["v"].any()


def reference_adam_step(w, m, v, t, g, opt):
    """One row's step written out plainly (PyTorch's Adam after clip_grad_norm_, with the decay)."""
    b1, b2 = opt.betas
    norm = np.sqrt(np.sum(g * g))
    g = g * min(1.0, opt.max_norm / (norm + 1e-12))
    t += 1
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    lr = max(opt.lr / np.sqrt(1 + t / opt.decay), opt.min_lr)
    w = w - lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + opt.eps)
    return w, m, v, t


def ragged_steps(rng, rows: int, steps: int):
    """Which rows step at each step (a random subset, never empty), so their step counts differ."""
    for _ in range(steps):
        picked = np.flatnonzero(rng.random(rows) < 0.6)
        yield picked if len(picked) else np.arange(rows)


def step_rows(opt, w, state, rows, g):
    """Step only `rows` of w and state (gathered and scattered back, like Fleet does)."""
    part = {n: a[rows] for n, a in state.items()}
    moved = w[rows]
    opt.step(moved, g.copy(), part)
    w[rows] = moved
    for n, a in part.items():
        state[n][rows] = a


@pytest.mark.parametrize("shared", [True, False])
def test_rows_at_any_steps_match_a_plain_adam_written_out_per_row(shared):
    """Rows that joined together (one step count) and rows at different step counts."""
    rng = np.random.default_rng(3)
    opt = Adam(lr=0.05, max_norm=1.0, decay=5.0, min_lr=0.01)
    w = rng.standard_normal((4, 30))
    state = opt.init_state(4, 30)
    ref = [(w[i].copy(), np.zeros(30), np.zeros(30), 0) for i in range(4)]
    steps = ([np.arange(4)] * 12) if shared else ragged_steps(rng, 4, 12)
    for rows in steps:
        g = rng.standard_normal((len(rows), 30)) * rng.choice([0.01, 10.0], (len(rows), 1))
        step_rows(opt, w, state, rows, g)
        for i, gi in zip(rows, g, strict=True):
            ref[i] = reference_adam_step(*ref[i], gi, opt)
    for i, (wi, mi, vi, ti) in enumerate(ref):
        np.testing.assert_allclose(w[i], wi, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(state["m"][i], mi, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(state["v"][i], vi, rtol=1e-12, atol=1e-15)
        assert state["t"][i] == ti
    assert shared or len(set(state["t"].tolist())) > 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_at_different_steps_step_exactly_like_each_row_alone(dtype):
    """Rows stepped together (factors as (B, 1) columns, norms as stacked dots) and each row
    alone (factors as numbers, its norm by np.dot): the same rounding, bit for bit."""
    rng = np.random.default_rng(11)
    opt = Adam(lr=0.01, max_norm=1.0, decay=10.0, min_lr=0.001)
    w = rng.standard_normal((4, 40)).astype(dtype)
    alone = [(w[i : i + 1].copy(), opt.init_state(1, 40, dtype)) for i in range(4)]
    state = opt.init_state(4, 40, dtype)
    for rows in [*ragged_steps(rng, 4, 10), np.arange(4)]:
        g = (rng.standard_normal((len(rows), 40)) * rng.choice([0.01, 10.0], (len(rows), 1))).astype(dtype)
        step_rows(opt, w, state, rows, g)
        for i, gi in zip(rows, g, strict=True):
            wi, si = alone[i]
            opt.step(wi, gi[None].copy(), si)
    assert len(set(state["t"].tolist())) > 1  # the last step was one of rows at different counts
    for i, (wi, si) in enumerate(alone):
        np.testing.assert_array_equal(w[i], wi[0])
        for n in ("m", "v", "t"):
            np.testing.assert_array_equal(state[n][i], si[n][0])
