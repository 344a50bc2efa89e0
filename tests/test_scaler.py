import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmstream.scaler import Scaler


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60))
def test_welford_matches_numpy(values):
    s = Scaler(size=1, rows=1)
    for v in values:
        s.update(np.array([0]), np.array([[v]]))
    assert s.n[0] == len(values)
    np.testing.assert_allclose(s.mean[0, 0], np.mean(values), rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(s.var[0, 0], np.var(values), rtol=1e-6, atol=1e-3)


def test_forgetting_follows_a_level_shift():
    plain, drifting = Scaler(1, 1), Scaler(1, 1, forget=0.05)
    for v in [0.0] * 500 + [100.0] * 200:
        for s in (plain, drifting):
            s.update(np.array([0]), np.array([[v]]))
    assert drifting.mean[0, 0] > 99.0
    assert plain.mean[0, 0] < 30.0


def test_zero_variance_is_guarded():
    s = Scaler(2, 1)
    for _ in range(10):
        s.update(np.array([0]), np.array([[5.0, 0.0]]))
    std = s.std(np.array([0]))
    assert (std > 0).all() and np.isfinite(std).all()


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=30),
    st.sampled_from([0.0, 0.1]),
    st.sampled_from(["float64", "float32"]),
)
def test_one_row_updates_exactly_like_the_same_row_in_a_batch(values, forget, dtype):
    """One row goes through views and a scalar weight, a batch through a gather and a column."""
    alone, batch = Scaler(1, 1, forget, dtype), Scaler(1, 3, forget, dtype)
    for v in values:
        mean, var = alone.update(np.array([0]), np.array([[v]], dtype))
        batch.update(np.array([2, 0]), np.array([[v], [2.0 * v]], dtype))
        assert mean[0, 0] == alone.mean[0, 0] and var[0, 0] == alone.var[0, 0]
    for n in ("n", "mean", "var"):
        np.testing.assert_array_equal(getattr(alone, n)[0], getattr(batch, n)[2])
    np.testing.assert_array_equal(alone.std(np.array([0])), batch.std(np.array([2])))
