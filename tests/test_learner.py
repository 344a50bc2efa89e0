import numpy as np
import pytest

from lstmstream.learner import Fleet, Forecaster, Settings, load_init, save_init

SMALL = Settings(hidden=8, window=8)


def noisy_sine(n: int, period: float = 20.0, noise: float = 0.1, seed: int = 1, phase: float = 0.0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10.0 + 3.0 * np.sin(2 * np.pi * t / period + phase) + noise * rng.standard_normal(n)


def prequential(model: Forecaster, ys) -> np.ndarray:
    """The forecast made for each point before it was learned (NaN for the first)."""
    out = np.full(len(ys), np.nan)
    for i, y in enumerate(ys):
        if i:
            out[i] = model.forecast()[0]
        model.learn_one(float(y), float(i))
    return out


def test_beats_naive_on_a_noisy_sine_within_400_points():
    ys = noisy_sine(400)
    fc = prequential(Forecaster(hidden_size=16, window=8), ys)
    last = slice(300, 400)
    mae = np.mean(np.abs(ys[last] - fc[last]))
    naive = np.mean(np.abs(ys[last] - ys[299:399]))
    assert mae < 0.6 * naive


def test_two_runs_agree_exactly_and_the_seed_matters():
    ys = noisy_sine(60)
    a = prequential(Forecaster(hidden_size=8, window=4, key="s"), ys)
    b = prequential(Forecaster(hidden_size=8, window=4, key="s"), ys)
    c = prequential(Forecaster(hidden_size=8, window=4, key="s", seed=1), ys)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[1:], c[1:])


def test_first_point_has_no_error_or_score_and_n_counts():
    f = Fleet(SMALL)
    row = np.array([f.add("a")])
    first = f.learn(row, np.array([[1.0]]), np.array([0.0]))
    second = f.learn(row, np.array([[2.0]]), np.array([1.0]))
    assert np.isnan(first.err).all() and np.isnan(first.score).all()
    assert first.n[0] == 1 and second.n[0] == 2
    assert second.err[0, 0] == pytest.approx(2.0 - first.v[0, 0])
    assert np.isfinite(second.score).all()
    assert (second.lo <= second.v).all() and (second.v <= second.hi).all()


def test_a_batch_of_streams_learns_exactly_as_each_stream_alone():
    ys = np.stack([noisy_sine(40, seed=s, phase=s) for s in range(3)], axis=1)
    together = Fleet(SMALL)
    rows = np.array([together.add(k) for k in "abc"])
    for i in range(40):
        got = together.learn(rows, ys[i][:, None], np.full(3, float(i)))
    for j, k in enumerate("abc"):
        alone = Fleet(SMALL)
        row = np.array([alone.add(k)])
        for i in range(40):
            want = alone.learn(row, ys[i, j].reshape(1, 1), np.array([float(i)]))
        np.testing.assert_allclose(got.v[j], want.v[0], rtol=1e-12)


def test_state_round_trip_changes_no_forecast():
    ys = np.stack([noisy_sine(80, seed=s) for s in range(3)], axis=1)
    a = Fleet(SMALL)
    rows = np.array([a.add(k) for k in "xyz"])
    for i in range(50):
        a.learn(rows, ys[i][:, None], np.full(3, float(i)))
    b = Fleet(SMALL)
    b.add("other")
    b_rows = b.restore(["z", "y", "x"], a.export(rows[::-1]))
    np.testing.assert_array_equal(b.forecast(b_rows, 3), a.forecast(rows[::-1], 3))
    for i in range(50, 80):
        sa = a.learn(rows, ys[i][:, None], np.full(3, float(i)))
        sb = b.learn(b_rows[::-1], ys[i][:, None], np.full(3, float(i)))
        for name in ("v", "lo", "hi", "err", "score", "n", "t"):
            np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name))


def test_horizon_feeds_forecasts_back_and_changes_nothing():
    ramp = np.arange(300, dtype=float)
    model, twin = Forecaster(hidden_size=8, window=4), Forecaster(hidden_size=8, window=4)
    for i, y in enumerate(ramp):
        model.learn_one(y, i)
        twin.learn_one(y, i)
    ahead = model.forecast(4)
    assert len(ahead) == 4
    assert ahead[0] == model.last.v[0, 0]
    np.testing.assert_allclose(ahead, [300, 301, 302, 303], atol=0.5)
    assert model.forecast(4) == ahead
    assert model.forecast() == ahead[:1]  # the one-step shortcut reads the same forecast
    model.learn_one(300.0, 300)
    twin.learn_one(300.0, 300)
    assert model.forecast(2) == twin.forecast(2)


def test_vector_stream_forecasts_vectors_and_learns_each_value():
    ys = np.stack([noisy_sine(400), 100 + 20 * noisy_sine(400, period=13, seed=2)], axis=1)
    model = Forecaster(hidden_size=16, window=8)
    errs, naive = [], []
    for i, y in enumerate(ys):
        if i >= 300:
            errs.append(np.abs(y - np.array(model.forecast()[0])))
            naive.append(np.abs(y - ys[i - 1]))
        model.learn_one(y.tolist(), i)
    ahead = model.forecast(2)
    assert len(ahead) == 2 and all(isinstance(v, list) and len(v) == 2 for v in ahead)
    assert model.forecast() == ahead[:1]
    assert (np.mean(errs, axis=0) < 0.8 * np.mean(naive, axis=0)).all()
    with pytest.raises(ValueError, match="3 values"):
        model.learn_one([1.0, 2.0, 3.0])


def test_non_finite_points_are_refused():
    model = Forecaster(hidden_size=4, window=2)
    model.learn_one(1.0)
    with pytest.raises(ValueError, match="non-finite"):
        model.learn_one(float("nan"))
    assert model.n == 1


def test_warm_start_copies_the_weights_into_every_new_stream(tmp_path):
    donor = Fleet(SMALL)
    row = donor.add("donor")
    params = {n: v[0].copy() for n, v in donor.layout.views(donor.w[row : row + 1]).items()}
    save_init(tmp_path / "m.npz", params, {"note": "test"})
    init = load_init(tmp_path / "m.npz")
    f = Fleet(SMALL, init=init)
    rows = [f.add("a"), f.add("b")]
    np.testing.assert_array_equal(f.w[rows[0]], donor.w[row])
    np.testing.assert_array_equal(f.w[rows[1]], donor.w[row])
    with pytest.raises(ValueError, match="do not fit"):
        Fleet(Settings(hidden=4, window=8), init=init)
    model = Forecaster(hidden_size=8, window=8, init=str(tmp_path / "m.npz"), key="new")
    model.learn_one(1.0)  # a first point scores and observes, it does not train
    np.testing.assert_array_equal(model.fleet.w[0], donor.w[row])


def test_load_init_refuses_pickles_and_non_models(tmp_path):
    np.savez(tmp_path / "obj.npz", W_ih=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled or object"):
        load_init(tmp_path / "obj.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="missing"):
        load_init(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a"):
        load_init(tmp_path / "junk.npz")


def test_a_float32_model_keeps_a_large_offset_stream_exact_in_its_statistics():
    """A meter near 1e6 that moves by hundredths: float32 (the default) would round every value
    to 0.06; the statistics, forecasts and errors are float64, only the model is float32."""
    rng = np.random.default_rng(3)
    ys = 1e6 + 0.05 * np.sin(np.arange(600) / 5.0) + 0.001 * rng.standard_normal(600)
    mae = {}
    for dtype in ("float32", "float64"):
        f = Fleet(Settings(hidden=8, window=8, dtype=dtype))
        row = np.array([f.add("meter")])
        prev, errs = None, []
        for i, y in enumerate(ys):
            step = f.learn(row, np.array([[y]]), np.array([float(i)]))
            if prev is not None:
                assert step.err[0, 0] == y - prev  # exactly the float64 difference
                errs.append(abs(step.err[0, 0]))
            prev = step.v[0, 0]
        assert f.w.dtype == np.dtype(dtype) and step.v.dtype == np.float64
        mae[dtype] = np.mean(errs[300:])
    naive = np.mean(np.abs(np.diff(ys)[300:]))
    assert mae["float32"] < naive  # learned the wave, which float32 values could not even hold
    assert mae["float32"] == pytest.approx(mae["float64"], rel=0.2)
