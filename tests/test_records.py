import json
import math

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstmstream.learner import Fleet, Settings
from lstmstream.records import forecasts, format_value, parse_value


def steps(size: int):
    f = Fleet(Settings(hidden=4, window=2), size)
    rows = np.array([f.add("a"), f.add("b")])
    first = f.learn(rows, np.ones((2, size)), np.array([1.0, 2.5]))
    second = f.learn(rows, np.full((2, size), 2.0), np.array([2.0, 3.5]))
    return first, second


def test_records_are_plain_python_values_with_none_on_the_first_point():
    first, second = steps(1)
    a0, b0 = forecasts(first)
    assert a0["err"] is None and a0["score"] is None and a0["n"] == 1
    assert a0["t"] == 1 and isinstance(a0["t"], int) and b0["t"] == 2.5
    a1 = next(forecasts(second))
    assert set(a1) == {"t", "v", "lo", "hi", "err", "score", "n"}
    assert all(type(a1[k]) is float for k in ("v", "lo", "hi", "err", "score"))
    assert a1["n"] == 2 and a1["lo"] <= a1["v"] <= a1["hi"]
    for rec in (a0, a1):
        assert msgpack.unpackb(msgpack.packb(rec)) == rec
        assert json.loads(json.dumps(rec)) == rec


def test_vector_records_carry_lists():
    _, second = steps(3)
    rec = next(forecasts(second))
    assert all(isinstance(rec[k], list) and len(rec[k]) == 3 for k in ("v", "lo", "hi", "err"))
    assert isinstance(rec["score"], float)


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(st.one_of(finite, st.lists(finite, min_size=2, max_size=5)))
def test_value_cells_round_trip_exactly(v):
    assert parse_value(format_value(v)) == v


@pytest.mark.parametrize("cell", ["", "x", "nan", "1;inf", "1;;2"])
def test_bad_value_cells_are_refused(cell):
    with pytest.raises(ValueError):
        parse_value(cell)


def test_none_is_an_empty_cell():
    assert format_value(None) == "" and format_value(3) == "3" and not math.isnan(parse_value("1e300"))
