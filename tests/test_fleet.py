"""A stream's forecasts do not depend on which other streams share its batch, its row, or the block."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmstream.learner import Fleet, Forecaster, Settings

S = Settings(hidden=5, window=4, lr=0.02)
FIELDS = ("v", "lo", "hi", "err", "score")


def values(key: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(key)
    return 5.0 * key + np.sin(np.arange(n) * 0.7 + key) + 0.2 * rng.standard_normal(n)


def forecaster(s: Settings, key: str = "", recompute: bool = True) -> Forecaster:
    f = Forecaster(s.hidden, s.window, s.lr, s.seed, key=key, dtype=s.dtype)
    f.fleet = Fleet(f.settings, recompute=recompute)  # its fleet of one, made here to pick the mode
    f.fleet.add(key)
    return f


def alone(key: str, ys: np.ndarray, s: Settings = S, recompute: bool = True) -> list[dict]:
    """Each step of `key` learned by a Forecaster on its own: {field: value} per point."""
    f = forecaster(s, key, recompute)
    out = []
    for t, y in enumerate(ys):
        f.learn_one(float(y), float(t))
        out.append({n: np.asarray(getattr(f.last, n))[0] for n in FIELDS} | {"f3": f.forecast(3)})
    return out


def assert_close(got: dict, want: dict) -> None:
    for n, w in want.items():
        np.testing.assert_allclose(got[n], w, rtol=1e-9, atol=1e-9, err_msg=n)


def batches(order: list[int], cuts: list[bool]) -> list[list[int]]:
    """Arrivals split into learn calls; a stream appears at most once per call."""
    out: list[list[int]] = [[]]
    for s, cut in zip(order, cuts, strict=False):
        if s in out[-1] or (cut and out[-1]):
            out.append([])
        out[-1].append(s)
    return out


@settings(max_examples=25, deadline=None)
@given(
    order=st.lists(st.integers(0, 5), min_size=1, max_size=40),
    cuts=st.lists(st.booleans(), min_size=40, max_size=40),
    block=st.sampled_from([1, 2, 32]),
    recompute=st.booleans(),
)
def test_a_fleet_learns_each_stream_as_a_forecaster_alone(order, cuts, block, recompute):
    keys = sorted(set(order))
    counts = {k: order.count(k) for k in keys}
    data = {k: values(k, counts[k]) for k in keys}
    want = {k: alone(f"s{k}", data[k], S, recompute) for k in keys}
    fleet = Fleet(S, recompute=recompute)
    fleet.BLOCK = block
    seen = dict.fromkeys(keys, 0)
    for batch in batches(order, cuts):
        rows = np.array([fleet.add(f"s{k}") for k in batch])
        ys = np.array([[data[k][seen[k]]] for k in batch])
        step = fleet.learn(rows, ys, np.array([float(seen[k]) for k in batch]))
        f3 = fleet.forecast(rows, 3)
        for j, k in enumerate(batch):
            got = {n: getattr(step, n)[j] for n in FIELDS} | {"f3": f3[j, :, 0]}
            assert_close(got, want[k][seen[k]])
            seen[k] += 1


@pytest.mark.parametrize("recompute", [True, False])
def test_streams_join_and_leave_without_disturbing_the_others(recompute):
    fleet = Fleet(S, recompute=recompute)
    data = {k: values(k, 30) for k in range(4)}
    want = {k: alone(f"s{k}", data[k], S, recompute) for k in range(4)}
    for t in range(10):
        fleet.learn(
            np.array([fleet.add(f"s{k}") for k in (0, 1, 2)]),
            np.array([[data[k][t]] for k in (0, 1, 2)]),
            np.full(3, float(t)),
        )
    assert fleet.remove("s0") == "s2"  # the last row moves into the hole
    assert fleet.keys == ["s2", "s1"] and fleet.index == {"s2": 0, "s1": 1}
    assert fleet.scaler.n[2] == 0 and not fleet.w[2].any()
    for t in range(10, 30):
        step = fleet.learn(
            np.array([fleet.index["s1"], fleet.index["s2"]]),
            np.array([[data[1][t]], [data[2][t]]]),
            np.full(2, float(t)),
        )
        for j, k in enumerate((1, 2)):
            assert_close({n: getattr(step, n)[j] for n in FIELDS}, {n: want[k][t][n] for n in FIELDS})
        u = t - 10  # s3 joins late, into the freed row, and starts fresh
        step = fleet.learn(np.array([fleet.add("s3")]), np.array([[data[3][u]]]), np.array([float(u)]))
        assert_close({n: getattr(step, n)[0] for n in FIELDS}, {n: want[3][u][n] for n in FIELDS})
    assert fleet.index["s3"] == 2
    assert fleet.remove("s3") is None and fleet.keys == ["s2", "s1"]


def test_the_fleet_grows_geometrically_and_keeps_every_stream():
    fleet = Fleet(S)
    data = {k: values(k, 12) for k in range(20)}
    capacities = set()
    for t in range(12):
        joined = range(min(20, 2 * (t + 1)))  # two newcomers per round
        rows = np.array([fleet.add(f"s{k}") for k in joined])
        ys = np.array([[data[k][t - (k // 2)]] for k in joined])
        fleet.learn(rows, ys, np.zeros(len(rows)))
        capacities.add(fleet.capacity)
    assert capacities == {8, 16, 32}
    for k in (0, 7, 19):
        want = alone(f"s{k}", data[k][: 12 - k // 2])[-1]
        np.testing.assert_allclose(fleet.fc[fleet.index[f"s{k}"]], want["v"], rtol=1e-9)


def test_a_lone_stream_learns_on_when_the_fleet_grows_under_it():
    """A stream learning point after point reuses its views of the fleet's arrays; streams that
    join reallocate the arrays, and learning must go on in the new ones."""
    data = values(0, 30)
    f = forecaster(S, "s0")
    fleet = Fleet(S)
    row = np.array([fleet.add("s0")])
    for t, y in enumerate(data):
        if t in (10, 20):  # capacity 8 -> 16 -> 32
            for k in range(fleet.capacity):
                fleet.add(f"joined at {t}: {k}")
        f.learn_one(float(y), float(t))
        step = fleet.learn(row, np.array([[y]]), np.array([float(t)]))
        assert_close({n: getattr(step, n)[0] for n in FIELDS}, {n: getattr(f.last, n)[0] for n in FIELDS})
    assert fleet.capacity == 32
    for n, a in f.fleet.export(np.array([0])).items():
        np.testing.assert_array_equal(fleet.export(row)[n], a, err_msg=n)


def test_float32_stays_close_to_float64():
    ys = values(3, 60)
    f64 = alone("s", ys, Settings(hidden=8, window=6))
    f32 = alone("s", ys, Settings(hidden=8, window=6, dtype="float32"))
    v64, v32 = np.array([s["v"] for s in f64]), np.array([s["v"] for s in f32])
    assert np.abs(v32 - v64).max() < 1e-3 * np.abs(ys).max()
    fleet = Fleet(Settings(hidden=8, window=6, dtype="float32"))
    assert fleet.w.dtype == np.float32


def test_without_recompute_an_update_reuses_the_kept_activations_and_still_learns():
    ys = (
        10 + 3 * np.sin(2 * np.pi * np.arange(400) / 20) + 0.1 * np.random.default_rng(1).standard_normal(400)
    )
    s = Settings(hidden=16, window=8)
    fc = {}
    for recompute in (True, False):
        f = forecaster(s, recompute=recompute)
        out = []
        for t, y in enumerate(ys):
            out.append(f.forecast()[0] if t else np.nan)
            f.learn_one(float(y), float(t))
        fc[recompute] = np.array(out)
    assert "steps.act" in f.fleet.arrays() and "steps.act" not in Fleet(s).arrays()
    assert not np.allclose(fc[True][2:], fc[False][2:])  # a different gradient, not the same maths
    last = slice(300, 400)
    naive = np.mean(np.abs(ys[last] - ys[299:399]))
    assert np.mean(np.abs(ys[last] - fc[False][last])) < 0.6 * naive
