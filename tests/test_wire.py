import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmstream import wire
from lstmstream.wire import Point, Reason, Rejected


def frames(key: bytes, obj: object) -> list[bytes]:
    return [key, msgpack.packb(obj)]


def reason(fs: list[bytes]) -> Reason:
    with pytest.raises(Rejected) as e:
        wire.decode(fs)
    return e.value.reason


def point_reasons(obj: object) -> list[Reason | Point]:
    _, items = wire.decode(frames(b"k", obj))
    return [x.reason if isinstance(x, Rejected) else x for x in items]


def test_scalar_vector_and_batch_points():
    assert wire.decode(frames(b"plant1/boiler-3/temp", {"t": 5, "v": 1.5})) == (
        "plant1/boiler-3/temp",
        [Point(5.0, (1.5,))],
    )
    assert point_reasons({"t": 1.5, "v": [1, 2.5], "unit": "C"}) == [Point(1.5, (1.0, 2.5))]
    assert point_reasons([{"t": 1, "v": 1}, {"t": 2, "v": "x"}, {"t": 3, "v": 3}]) == [
        Point(1.0, (1.0,)),
        Reason.V,
        Point(3.0, (3.0,)),
    ]


@pytest.mark.parametrize(
    ("fs", "why"),
    [
        ([b"k"], Reason.FRAMES),
        ([b"k", msgpack.packb({"t": 1, "v": 1}), b""], Reason.FRAMES),
        ([b"", msgpack.packb({"t": 1, "v": 1})], Reason.KEY),
        ([b"k" * 257, msgpack.packb({"t": 1, "v": 1})], Reason.KEY),
        ([b"\xff\xfe", msgpack.packb({"t": 1, "v": 1})], Reason.KEY),
        ([b"$stats", msgpack.packb({"t": 1, "v": 1})], Reason.KEY),
        ([b"k", b"\xc1"], Reason.MSGPACK),
        ([b"k", msgpack.packb({"t": 1, "v": 1})[:-1]], Reason.MSGPACK),
        ([b"k", msgpack.packb({"t": 1, "v": 1}) + b"\x01"], Reason.MSGPACK),
        ([b"k", msgpack.packb({"t": 1, "v": b"\x00" * 8})], Reason.MSGPACK),  # bin is refused
        ([b"k", msgpack.packb({"t": 1, "v": "x" * 300})], Reason.MSGPACK),  # past max_str_len
        ([b"k", msgpack.packb([{"t": i, "v": 1} for i in range(wire.MAX_BATCH + 1)])], Reason.MSGPACK),
        ([b"k", msgpack.packb({1: 2})], Reason.MSGPACK),  # map keys must be strings
    ],
)
def test_unusable_messages(fs, why):
    assert reason(fs) == why


def test_key_limits_are_bytes_and_inclusive():
    assert wire.decode(frames("é".encode() * 128, {"t": 1, "v": 1}))[0] == "é" * 128


@pytest.mark.parametrize(
    ("obj", "why"),
    [
        (3, Reason.NOT_MAP),
        ("x", Reason.NOT_MAP),
        ({"t": 1}, Reason.V),
        ({"t": 1, "v": "3.0"}, Reason.V),
        ({"t": 1, "v": True}, Reason.V),
        ({"t": 1, "v": None}, Reason.V),
        ({"t": 1, "v": [[1.0]]}, Reason.V),
        ({"t": 1, "v": []}, Reason.V),
        ({"t": 1, "v": [1, False]}, Reason.V),
        ({"t": 1, "v": {"x": 1}}, Reason.V),
        ({"v": 1}, Reason.T),
        ({"t": "2024-01-01", "v": 1}, Reason.T),
        ({"t": False, "v": 1}, Reason.T),
        ({"t": 1, "v": math.nan}, Reason.NONFINITE),
        ({"t": 1, "v": [1.0, -math.inf]}, Reason.NONFINITE),
        ({"t": math.inf, "v": 1}, Reason.NONFINITE),
    ],
)
def test_bad_points(obj, why):
    assert point_reasons(obj) == [why]


def test_encode_is_plain_msgpack():
    record = {"t": 3, "v": 1.5, "lo": 1.0, "hi": 2.0, "err": None, "score": None, "n": 1}
    key, payload = wire.encode("a/b", record)
    assert key == b"a/b"
    assert msgpack.unpackb(payload) == record
    assert wire.decode(wire.encode_point("a/b", 2.5, [1.0, 2.0])) == ("a/b", [Point(2.5, (1.0, 2.0))])


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(["t", "v", "x"]), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(key=st.binary(max_size=300), payload=st.binary(max_size=200), obj=msgpack_values)
def test_decoder_never_raises_past_rejection(key, payload, obj):
    for fs in ([key, payload], [key, msgpack.packb(obj)], [key]):
        try:
            _, items = wire.decode(fs)
        except Rejected:
            continue
        for item in items:
            if isinstance(item, Point):
                assert all(math.isfinite(x) for x in (item.t, *item.v))
            else:
                assert isinstance(item, Rejected)


def test_a_reused_packer_writes_what_packb_writes():
    pack = wire.packer()
    for record in (
        {"t": 1_700_000_000, "v": 1.5, "lo": 1.0, "hi": 2.0, "err": None, "score": None, "n": 1},
        {
            "t": 2.5,
            "v": [1.0, 2.0],
            "lo": [0.5, 1.5],
            "hi": [1.5, 2.5],
            "err": [0.1, -0.2],
            "score": 0.3,
            "n": 2,
        },
    ):
        assert pack(record) == msgpack.packb(record) == wire.encode("k", record)[1]
