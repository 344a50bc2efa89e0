"""The wire decoder against hostile input: hypothesis on arbitrary bytes and msgpack values, and
the daemon end to end with garbage frames between valid points."""

from __future__ import annotations

import math
import random
import time

import msgpack
import zmq
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support import WAIT, next_stats

from lstmstream import wire
from lstmstream.wire import Point, Rejected


def check(frames: list[bytes]) -> list[Point]:
    """decode(frames) raises nothing but Rejected, and whatever it yields is a valid point."""
    return decode(frames)[0]


def decode(frames: list[bytes]) -> tuple[list[Point], int]:
    """The valid points of a message, checked, and how many rejections it earns."""
    try:
        key, items = wire.decode(frames)
    except Rejected as r:
        assert isinstance(r.reason, wire.Reason)
        return [], 1
    assert len(frames) == 2
    assert 1 <= len(frames[0]) <= wire.MAX_KEY and key.encode() == frames[0] and not key.startswith("$")
    points = [p for p in items if isinstance(p, Point)]
    assert all(isinstance(r.reason, wire.Reason) for r in items if not isinstance(r, Point))
    for p in points:
        assert type(p.t) is float and math.isfinite(p.t)
        assert p.v and all(type(x) is float and math.isfinite(x) for x in p.v)
    return points, len(items) - len(points)


KEYS = st.one_of(st.binary(max_size=300), st.text(max_size=80).map(str.encode))


@given(st.lists(st.binary(max_size=200), max_size=4))
@example([b"k", b"\x91" * 100_000])  # nested arrays deeper than msgpack's stack
@example([b"k", b"\xdd\xff\xff\xff\xff"])  # an array claiming 4 G elements
@example([b"k", b"\xc7\xff\x01" + b"\x00" * 255])  # an ext type
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_frames_are_rejected_or_valid(frames):
    check(frames)


NUMBERS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.booleans(),
)
SCALARS = st.one_of(st.none(), NUMBERS, st.text(max_size=20), st.binary(max_size=20))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=5),
    ),
    max_leaves=8,
)
POINTS = st.fixed_dictionaries(  # near misses of a valid point
    {"t": NUMBERS, "v": st.one_of(NUMBERS, st.lists(NUMBERS, max_size=5))}, optional={"extra": VALUES}
)
ODD_POINTS = st.fixed_dictionaries({"t": VALUES, "v": VALUES})
PAYLOADS = st.one_of(POINTS, st.lists(st.one_of(POINTS, ODD_POINTS, VALUES), max_size=6), ODD_POINTS, VALUES)


def packed(obj) -> bytes | None:
    try:
        return msgpack.packb(obj, use_bin_type=True, strict_types=False)
    except (TypeError, ValueError, OverflowError):
        return None


@given(KEYS, PAYLOADS)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_msgpack_values_are_rejected_or_valid(key, obj):
    payload = packed(obj)
    points = check([key, payload if payload is not None else b""])
    if payload is None or not points:
        return
    items = obj if isinstance(obj, list) else [obj]
    maps = [i for i in items if isinstance(i, dict) and "t" in i and "v" in i]
    for p, m in zip(points, [m for m in maps if _valid(m)], strict=True):
        assert p.t == float(m["t"])
        assert p.v == tuple(float(x) for x in (m["v"] if isinstance(m["v"], list) else [m["v"]]))


def _valid(m: dict) -> bool:
    """The protocol's rule for one point, written out independently of the decoder."""
    num = lambda x: isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)  # noqa: E731
    vs = m["v"] if isinstance(m["v"], list) else [m["v"]]
    return num(m["t"]) and len(vs) > 0 and all(num(x) for x in vs)


@given(st.lists(st.one_of(POINTS, ODD_POINTS, VALUES), min_size=1, max_size=8))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_a_batch_keeps_every_valid_point_in_order(items):
    payload = packed(items)
    if payload is None or len(items) > wire.MAX_BATCH:
        return
    try:
        _, out = wire.decode([b"k", payload])
    except Rejected:
        return  # the whole payload over a limit (a long string, a big map)
    assert len(out) == len(items)
    for item, got in zip(items, out, strict=True):
        ok = isinstance(item, dict) and "t" in item and "v" in item and _valid(item)
        assert isinstance(got, Point) == ok, (item, got)


# ---- end to end ------------------------------------------------------------------------------


def garbage(rng: random.Random) -> list[bytes]:
    """A message that carries no valid point: random frames, broken msgpack, bad points, bad keys."""
    kinds = [
        lambda: [rng.randbytes(rng.randrange(0, 60)) for _ in range(rng.choice([1, 3, 4]))],
        lambda: [b"junk", rng.randbytes(rng.randrange(0, 80))],
        lambda: [b"junk", msgpack.packb({"t": "soon", "v": [1, 2]})],
        lambda: [b"junk", msgpack.packb([{"t": float("nan"), "v": 1}, {"v": 2}, 7])],
        lambda: [b"$stats", msgpack.packb({"t": 1, "v": 1})],
        lambda: [b"\xff\xfe", msgpack.packb({"t": 1, "v": 1})],
        lambda: [b"k" * 300, msgpack.packb({"t": 1, "v": 1})],
        lambda: [b"junk", b"\x91" * 5000],
    ]
    while True:
        frames = rng.choice(kinds)()
        if not check(frames):
            return frames


def test_garbage_publishes_nothing_and_valid_points_still_get_forecasts(ctx, daemon):
    d = daemon()
    out = ctx.socket(zmq.SUB)
    out.setsockopt(zmq.SUBSCRIBE, b"")
    out.connect(d.pub)
    src = ctx.socket(zmq.XPUB)
    src.setsockopt(zmq.XPUB_NODROP, 1)
    src.connect(d.sub)
    assert src.poll(int(1000 * WAIT)), "the daemon never subscribed"
    src.recv()
    next_stats(out)  # the subscription is in place: every forecast from now on arrives
    rng, sent_bad, rejections, good = random.Random(7), 0, 0, 60
    for t in range(1, good + 1):
        for _ in range(5):
            frames = garbage(rng)
            src.send_multipart(frames)
            sent_bad += 1
            rejections += decode(frames)[1]
        src.send_multipart([b"good", msgpack.packb({"t": t, "v": math.sin(t)})])
    got, final = [], None
    deadline = time.monotonic() + WAIT
    while final is None:
        assert time.monotonic() < deadline, f"{len(got)} forecasts, no final $stats"
        if out.poll(100):
            key, payload = out.recv_multipart()
            record = msgpack.unpackb(payload)
            if key != b"$stats":
                got.append((key, record))
            elif record["received"] == sent_bad + good:
                final = record
    assert final["learned"] == good and final["streams"] == 1
    assert sum(final["rejected"].values()) == rejections >= sent_bad
    assert [k for k, _ in got] == [b"good"] * good
    assert [r["t"] for _, r in got] == list(range(1, good + 1))
    assert d.stop() == 0
