"""The daemon end to end: the real CLI in subprocesses, real sockets (ipc:// in tmp_path)."""

import json
import math
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from support import CLI, SMALL, WAIT, Daemon, next_stats, pack, read_rows, write_csv

from lstmstream import records
from lstmstream.learner import Fleet, Settings

SETTINGS = Settings(hidden=8, window=4)


def subscribe(ctx, d: Daemon, *prefixes: bytes) -> zmq.Socket:
    """A SUB on the daemon's PUB, returned once a $stats proves the subscription is in place."""
    s = ctx.socket(zmq.SUB)
    for p in (*prefixes, b"$stats"):
        s.setsockopt(zmq.SUBSCRIBE, p)
    s.connect(d.pub)
    next_stats(s)
    return s


def sender(ctx, d: Daemon) -> zmq.Socket:
    """An XPUB connected to the daemon's SUB, returned once the daemon has subscribed."""
    s = ctx.socket(zmq.XPUB)
    s.connect(d.sub)
    assert s.poll(int(WAIT * 1000)), "the daemon never subscribed"
    s.recv()
    return s


def forecasts(sock: zmq.Socket, count: int) -> list[tuple[str, dict]]:
    out = []
    deadline = time.monotonic() + WAIT
    while len(out) < count and time.monotonic() < deadline:
        if sock.poll(100):
            key, payload = sock.recv_multipart()
            if key != b"$stats":
                out.append((key.decode(), msgpack.unpackb(payload)))
    assert len(out) == count, f"{len(out)} of {count} forecasts arrived"
    return out


def expected(points: list[tuple[str, float, object]]) -> dict[str, list[dict]]:
    """What `Fleet.learn` gives, one stream and one point at a time (the daemon batches)."""
    fleets, out = {}, defaultdict(list)
    for key, t, v in points:
        y = np.atleast_1d(np.asarray(v, float))
        if key not in fleets:
            fleets[key] = Fleet(SETTINGS, len(y))
            fleets[key].add(key)
        out[key] += records.forecasts(fleets[key].learn(np.zeros(1, np.int64), y[None], np.array([t], float)))
    return out


def assert_close(got: dict, want: dict) -> None:
    for f in ("t", "n"):
        assert got[f] == want[f]
    for f in ("v", "lo", "hi", "err", "score"):
        if want[f] is None:
            assert got[f] is None
        else:
            np.testing.assert_allclose(got[f], want[f], rtol=0, atol=1e-9)


def test_every_bad_input_is_rejected_counted_and_valid_points_still_get_forecasts(ctx, daemon):
    d = daemon("--max-streams", "3", "--max-msg-size", "2048")
    out = subscribe(ctx, d, b"")
    pub = sender(ctx, d)
    good = {"a": 0, "b": 0, "c": 0}
    valid: list[tuple[str, float, object]] = []
    values = {"a": lambda t: math.sin(t / 3), "b": lambda t: [t % 5, -t], "c": lambda t: 10 + t % 3}

    def send_good(key: str) -> None:
        good[key] += 1
        t, v = good[key], values[key](good[key])
        valid.append((key, t, v))
        pub.send_multipart([key.encode(), pack(t, v)])

    for key in good:
        send_good(key)
    bad = [
        ("frames", [b"a"]),
        ("frames", [b"a", pack(99, 1), b"extra"]),
        ("key", [b"\xff\xfe", pack(99, 1)]),
        ("key", [b"", pack(99, 1)]),
        ("key", [b"k" * 257, pack(99, 1)]),
        ("key", [b"$fake", pack(99, 1)]),
        ("msgpack", [b"a", b"\xc1"]),
        ("msgpack", [b"a", pack(99, 1)[:-1]]),
        ("not_map", [b"a", msgpack.packb(3.5)]),
        ("v", [b"a", msgpack.packb({"t": 99})]),
        ("v", [b"a", pack(99, "1.0")]),
        ("v", [b"a", pack(99, True)]),
        ("v", [b"b", pack(99, [[1.0, 2.0]])]),
        ("size", [b"b", pack(99, [1.0, 2.0, 3.0])]),
        ("size", [b"b", pack(99, 1.0)]),
        ("nonfinite", [b"a", pack(99, math.nan)]),
        ("nonfinite", [b"b", pack(99, [1.0, math.inf])]),
        ("t", [b"a", msgpack.packb({"v": 1.0})]),
        ("t", [b"a", pack("noon", 1.0)]),
        ("late", [b"a", pack(0, 1.0)]),
        ("late", [b"c", pack(1, 1.0)]),  # a duplicate
        ("max_streams", [b"d", pack(1, 1.0)]),
    ]
    want = defaultdict(int)
    for i, (why, frames) in enumerate(bad):
        pub.send_multipart(frames)
        want[why] += 1
        send_good("abc"[i % 3])
    # a batch: good, late, good, nonfinite, good, in order
    t = good["c"]
    good["c"] += 3
    batch = [{"t": t + 1, "v": 1.0}, {"t": t, "v": 1.0}, {"t": t + 2, "v": 2.0}, {"t": t + 3, "v": -math.inf},
             {"t": t + 3, "v": 3.0}]  # fmt: skip
    pub.send_multipart([b"c", msgpack.packb(batch)])
    valid += [("c", t + 1, 1.0), ("c", t + 2, 2.0), ("c", t + 3, 3.0)]
    want["late"] += 1
    want["nonfinite"] += 1
    # too big for --max-msg-size: ZeroMQ drops it (and that connection) before the daemon sees it
    big = sender(ctx, d)
    big.send_multipart([b"a", pack(1000, [1.0] * 600)])
    send_good("a")

    got = forecasts(out, len(valid))
    final = next_stats(out, until=lambda st: st["learned"] == len(valid))
    assert final["rejected"] == dict(want)
    assert final["streams"] == 3
    assert final["received"] == 3 + 2 * len(bad) + 1 + 1  # the oversized ones never arrived
    want_fc = expected(valid)
    by_key = defaultdict(list)
    for key, rec in got:
        by_key[key].append(rec)
    assert set(by_key) == {"a", "b", "c"}
    for key, recs in by_key.items():
        assert len(recs) == len(want_fc[key])
        for g, w in zip(recs, want_fc[key], strict=True):
            assert_close(g, w)
    assert d.proc.poll() is None
    assert d.stop() == 0
    log = d.log.read_text()
    assert "rejected (late)" in log and "rejected (max_streams)" in log
    assert all(line.count("\n") == 0 for line in log.splitlines())


def test_interleaved_streams_and_batches_match_the_learner(ctx, daemon):
    d = daemon()
    out = subscribe(ctx, d, b"plant1/")
    pub = sender(ctx, d)
    rng = np.random.default_rng(1)
    points = []
    for i in range(60):
        points.append(("plant1/temp", float(i), float(20 + np.sin(i / 5) + rng.normal(0, 0.1))))
        points.append(("plant1/flow", 1000.0 + 0.5 * i, [float(rng.normal()), float(i % 7)]))
        if i % 3 == 0:
            points.append(("plant1/rare", i, int(i)))
    for key, t, v in points[:90]:
        pub.send_multipart([key.encode(), pack(t, v)])
    rest = defaultdict(list)  # the rest as one batch message per key
    for key, t, v in points[90:]:
        rest[key].append({"t": t, "v": v})
    for key, batch in rest.items():
        pub.send_multipart([key.encode(), msgpack.packb(batch)])
    pub.send_multipart([b"other/x", pack(1, 1.0)])  # learned, but not under our prefix
    got = forecasts(out, len(points))
    want = expected(points)
    by_key = defaultdict(list)
    for key, rec in got:
        by_key[key].append(rec)
    for key, recs in by_key.items():
        assert [r["n"] for r in recs] == list(range(1, len(want[key]) + 1))
        for g, w in zip(recs, want[key], strict=True):
            assert_close(g, w)
    assert by_key["plant1/temp"][0]["err"] is None and isinstance(by_key["plant1/flow"][1]["v"], list)
    assert d.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_the_batch_and_exits_zero(ctx, daemon, sig):
    d = daemon()
    out = subscribe(ctx, d, b"")
    pub = sender(ctx, d)
    pub.send_multipart([b"s", msgpack.packb([{"t": i, "v": float(i % 4)} for i in range(300)])])
    forecasts(out, 1)  # it is learning
    assert d.stop(sig) == 0
    forecasts(out, 299)  # the whole drain was learned and published before the exit
    assert "stopping" in d.log.read_text()


PLAIN_CLIENT = r"""
import json, sys, time
import msgpack, zmq
sub_ep, pub_ep = sys.argv[1:3]
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"site/")
sub.setsockopt(zmq.SUBSCRIBE, b"$stats")
sub.connect(pub_ep)
pub = ctx.socket(zmq.XPUB)
pub.connect(sub_ep)
assert pub.poll(30000) and pub.recv()[0] == 1           # the daemon subscribed
deadline = time.monotonic() + 30
stats = None
while stats is None and time.monotonic() < deadline:   # our subscription is in place
    if sub.poll(100):
        key, payload = sub.recv_multipart()
        stats = msgpack.unpackb(payload) if key == b"$stats" else None
for i in range(20):
    pub.send_multipart([b"site/pump/rpm", msgpack.packb({"t": 1700000000 + 60 * i, "v": 1500 + i % 4})])
got = []
while len(got) < 20 and time.monotonic() < deadline:
    if sub.poll(100):
        key, payload = sub.recv_multipart()
        if key != b"$stats":
            got.append([key.decode(), msgpack.unpackb(payload)])
assert "lstmstream" not in sys.modules
print(json.dumps({"stats": stats, "forecasts": got}))
"""


def test_a_client_with_plain_msgpack_and_zmq(daemon):
    d = daemon()
    run = subprocess.run([sys.executable, "-c", PLAIN_CLIENT, d.sub, d.pub], capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr.decode()
    result = json.loads(run.stdout)
    assert set(result["stats"]) >= {"received", "learned", "published", "rejected", "streams", "us_per_point"}
    recs = result["forecasts"]
    assert [k for k, _ in recs] == ["site/pump/rpm"] * 20
    assert [r["n"] for _, r in recs] == list(range(1, 21))
    assert [r["t"] for _, r in recs] == [1700000000 + 60 * i for i in range(20)]
    first, later = recs[0][1], recs[5][1]
    assert first["err"] is None and first["score"] is None
    assert all(isinstance(later[f], float) for f in ("v", "lo", "hi", "err", "score"))
    assert later["lo"] <= later["v"] <= later["hi"]
    assert d.stop() == 0


def write_points(path: Path, streams: int, per_stream: int) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(0)
    points = [
        (f"data/s{j:02d}", float(i), round(float(np.sin(i / 10 + j) + rng.normal(0, 0.1)), 6))
        for i in range(per_stream)
        for j in range(streams)
    ]
    write_csv(path, points)
    return points


def start_recording(ctx, d: Daemon, tmp_path: Path, prefix: str) -> tuple[subprocess.Popen, Path]:
    """`lstmstream record` on the daemon's PUB, returned once it demonstrably records."""
    rec_csv = tmp_path / "rec.csv"
    rec = subprocess.Popen([*CLI, "record", "--sub", ">" + d.pub, "--prefix", prefix, "-o", str(rec_csv)])
    pub = sender(ctx, d)
    deadline = time.monotonic() + WAIT
    t = 0
    while not (rec_csv.exists() and len(read_rows(rec_csv)) > 0):
        assert time.monotonic() < deadline, "record never received anything"
        t += 1
        pub.send_multipart([f"{prefix}probe".encode(), pack(t, 0.0)])
        time.sleep(0.05)
    pub.close(linger=0)
    return rec, rec_csv


def wait_rows(path: Path, key_prefix: str, count: int) -> list[dict]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        rows = [r for r in read_rows(path) if r["key"].startswith(key_prefix)]
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"{len(rows)} of {count} rows recorded")


def test_lossless_replay_of_10000_points_over_10_streams(ctx, daemon, tmp_path):
    d = daemon()
    data = tmp_path / "points.csv"
    points = write_points(data, streams=10, per_stream=1000)
    rec, rec_csv = start_recording(ctx, d, tmp_path, "data/")
    replay = subprocess.run(
        [*CLI, "replay", str(data), "--pub", ">" + d.sub], capture_output=True, timeout=120
    )
    assert replay.returncode == 0, replay.stderr.decode()
    assert "sent 10000 points" in replay.stderr.decode()
    rows = wait_rows(rec_csv, "data/s", len(points))
    rec.send_signal(signal.SIGTERM)
    assert rec.wait(WAIT) == 0
    assert len(rows) == 10_000
    by_key = defaultdict(list)
    for r in rows:
        by_key[r["key"]].append(r)
    assert len(by_key) == 10
    for recs in by_key.values():
        assert [int(r["n"]) for r in recs] == list(range(1, 1001))
        assert [float(r["t"]) for r in recs] == [float(i) for i in range(1000)]
    assert d.stop() == 0


def test_daemon_forecasts_equal_eval_forecasts(ctx, daemon, tmp_path):
    d = daemon()
    data = tmp_path / "points.csv"
    write_points(data, streams=3, per_stream=150)
    eval_csv = tmp_path / "eval.csv"
    ev = subprocess.run([*CLI, "eval", str(data), "--forecasts", str(eval_csv), *SMALL], capture_output=True,
                        timeout=120)  # fmt: skip
    assert ev.returncode == 0, ev.stderr.decode()
    rec, rec_csv = start_recording(ctx, d, tmp_path, "data/")
    replay = subprocess.run(
        [*CLI, "replay", str(data), "--pub", ">" + d.sub], capture_output=True, timeout=120
    )
    assert replay.returncode == 0, replay.stderr.decode()
    got = wait_rows(rec_csv, "data/s", 450)
    rec.send_signal(signal.SIGTERM)
    assert rec.wait(WAIT) == 0
    want = read_rows(eval_csv)
    key = lambda r: (r["key"], float(r["t"]))  # noqa: E731
    assert sorted(map(key, got)) == sorted(map(key, want))
    want_by = {key(r): r for r in want}
    for g in got:
        w = want_by[key(g)]
        assert g["n"] == w["n"]
        for f in ("v", "lo", "hi", "err", "score"):
            if w[f] == "":
                assert g[f] == ""
            else:
                assert abs(float(g[f]) - float(w[f])) <= 1e-9, (g, w)
    assert d.stop() == 0


def test_tail_prints_forecasts_live(ctx, daemon, tmp_path):
    d = daemon()
    outs = {"json": tmp_path / "tail.json", "text": tmp_path / "tail.txt"}
    procs = []
    for kind, path in outs.items():
        with open(path, "w") as f:
            flags = ["--json"] if kind == "json" else []
            procs.append(
                subprocess.Popen([*CLI, "tail", "--sub", ">" + d.pub, "--count", "3", *flags, "x/"], stdout=f)
            )
    pub = sender(ctx, d)
    deadline = time.monotonic() + WAIT
    t = 0
    while any(p.poll() is None for p in procs):
        assert time.monotonic() < deadline, "tail did not finish"
        t += 1
        pub.send_multipart([b"x/y", pack(t, float(t % 3))])
        pub.send_multipart([b"other", pack(t, 1.0)])
        time.sleep(0.05)
    assert [p.returncode for p in procs] == [0, 0]
    lines = [json.loads(x) for x in outs["json"].read_text().splitlines()]
    assert len(lines) == 3 and all(x["key"] == "x/y" for x in lines)
    assert [x["n"] for x in lines] == sorted(x["n"] for x in lines)
    text = outs["text"].read_text().splitlines()
    assert len(text) == 3 and all(x.startswith("x/y  t=") and " n=" in x for x in text)
    assert d.stop() == 0


def test_record_points_from_replay(tmp_path):
    data = tmp_path / "points.csv"
    points = write_points(data, streams=2, per_stream=50)
    ep = f"ipc://{tmp_path}/points"
    rec_csv = tmp_path / "rec.csv"
    rec = subprocess.Popen([*CLI, "record", "--sub", ">" + ep, "--count", "100", "-o", str(rec_csv)])
    replay = subprocess.run([*CLI, "replay", str(data), "--pub", "@" + ep], capture_output=True, timeout=60)
    assert replay.returncode == 0, replay.stderr.decode()
    assert rec.wait(WAIT) == 0
    rows = read_rows(rec_csv)
    assert [(r["key"], float(r["t"]), float(r["v"])) for r in rows] == points
