"""replay's pacing and failure modes, record's and tail's formats (the end-to-end runs are in test_daemon)."""

import io
import time

import msgpack
import pytest
import zmq
from support import run_cli

from lstmstream.csvio import Point
from lstmstream.record import Recorder
from lstmstream.replay import Stalled, load, pacing, replay
from lstmstream.tail import line


def pts(ts):
    return [Point("k", float(t), 1.0, i + 2) for i, t in enumerate(ts)]


def test_pacing():
    points = pts([100, 110, 130])
    assert pacing(points, None, None) is None
    assert pacing(points, 4.0, None) == [0.0, 0.25, 0.5]
    assert pacing(points, None, 10.0) == [0.0, 1.0, 3.0]


def test_files_interleave_by_time_and_key_names_a_nab_file(tmp_path):
    (tmp_path / "a.csv").write_text("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:10:00,2\n")
    (tmp_path / "b.csv").write_text("key,t,v\nx,1704067500,5\ny,1704067800,1;2\n")
    got = [(p.key, p.v) for p in load([tmp_path / "a.csv", tmp_path / "b.csv"], key=None)]
    assert got == [("a", 1.0), ("x", 5.0), ("a", 2.0), ("y", [1.0, 2.0])]
    assert {p.key for p in load([tmp_path / "a.csv"], key="plant/a")} == {"plant/a"}


def test_replay_without_a_subscriber_gives_up_clearly(tmp_path):
    with pytest.raises(Stalled, match="no subscriber"):
        replay(pts([1, 2]), f"@ipc://{tmp_path}/nobody", timeout=0.3)


def test_replay_waits_instead_of_dropping_and_reports_a_stall(tmp_path):
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 10)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"ipc://{tmp_path}/slow")
    start = time.monotonic()
    with pytest.raises(Stalled, match="took nothing"):  # nobody reads: the queues fill, replay waits
        replay(pts(range(200_000)), f"@ipc://{tmp_path}/slow", timeout=1.0, ctx=ctx)
    assert time.monotonic() - start < 30
    ts = []
    while sub.poll(200):
        ts.append(msgpack.unpackb(sub.recv_multipart()[1])["t"])
    assert 0 < len(ts) < 200_000 and ts == list(range(len(ts)))  # what went out: in order, no gaps
    sub.close(linger=0)
    ctx.destroy(linger=0)


def test_replay_cli_names_the_problem(tmp_path):
    data = tmp_path / "p.csv"
    data.write_text("key,t,v\nk,1,1\n")
    run = run_cli("replay", str(data), "--pub", f">ipc://{tmp_path}/none", "--timeout", "0.3", timeout=60)
    assert run.returncode == 1 and "no subscriber" in run.stderr


def test_recorder_keeps_the_first_kind_and_skips_stats():
    out = io.StringIO()
    rec = Recorder(out)
    fc = {"t": 3, "v": 1.5, "lo": 1.0, "hi": 2.0, "err": None, "score": None, "n": 1}
    rec.write("$stats", {"learned": 1})
    rec.write("a", fc)
    rec.write("b", {"t": 1, "v": 2.0})  # a point in a forecast recording: skipped
    rec.write("a", {**fc, "t": 4, "v": [1.0, 2.5], "err": 0.25, "score": 1.0, "n": 2})
    assert out.getvalue().splitlines() == ["key,t,v,lo,hi,err,score,n", "a,3,1.5,1.0,2.0,,,1",
                                           "a,4,1.0;2.5,1.0,2.0,0.25,1.0,2"]  # fmt: skip
    assert rec.rows == 2 and rec.skipped == 1
    out = io.StringIO()
    rec = Recorder(out)
    rec.write("a", [{"t": 1, "v": 2}, {"t": "bad", "v": 1}, {"t": 2.5, "v": [1, 2]}])
    assert out.getvalue().splitlines() == ["key,t,v", "a,1.0,2.0", "a,2.5,1.0;2.0"]


def test_tail_line_marks_high_scores():
    rec = {"t": 7, "v": 1.23456, "lo": 1.0, "hi": 1.5, "err": -0.5, "score": 4.5, "n": 9}
    assert line("p/x", rec) == "p/x  t=7  v=1.235  [1 .. 1.5]  err=-0.5  score=4.5  n=9  !"
    first = {**rec, "err": None, "score": None, "v": [1.0, 2.0], "lo": [0.5, 1.5], "hi": [1.5, 2.5]}
    assert line("p/x", first) == "p/x  t=7  v=[1, 2]  [[0.5, 1.5] .. [1.5, 2.5]]  err=-  score=-  n=9"
