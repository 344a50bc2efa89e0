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
