"""--forget-after: the daemon drops streams that have gone quiet, from memory and from its state dir.

End to end with the real CLI (the `daemon` fixture: ipc:// in tmp_path, $stats every 0.2 s), and
in process for the one race that matters: streams forgotten while a checkpoint is being copied."""

import math
import re
import time
from collections import defaultdict
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from click.testing import CliRunner
from support import WAIT, Daemon, next_stats, pack

from lstmstream import checkpoint
from lstmstream.checkpoint import bucket_of
from lstmstream.cli import main
from lstmstream.config import Config, ConfigError, load
from lstmstream.daemon import Daemon as Server
from lstmstream.learner import Fleet, Settings
from lstmstream.service import learned
from lstmstream.wire import Point

SETTINGS = Settings(hidden=8, window=4)
FORGET = "1.0"  # seconds; busy streams send every PACE seconds, far more often
PACE = 0.05


class Feed:
    """A sender on the daemon's SUB and a subscriber on its PUB; forecasts' n and $stats as they come."""

    def __init__(self, ctx: zmq.Context, d: Daemon):
        self.out = ctx.socket(zmq.SUB)
        self.out.setsockopt(zmq.SUBSCRIBE, b"")
        self.out.connect(d.pub)
        next_stats(self.out)
        self.pub = ctx.socket(zmq.XPUB)
        self.pub.connect(d.sub)
        assert self.pub.poll(int(WAIT * 1000)), "the daemon never subscribed"
        self.pub.recv()
        self.t: dict[str, float] = defaultdict(float)  # last t sent per key
        self.sent: dict[str, int] = defaultdict(int)
        self.ns: dict[str, list[int]] = defaultdict(list)  # n of each forecast, in arrival order
        self.stats: dict = {}

    def send(self, key: str, t: float | None = None) -> None:
        self.t[key] = self.t[key] + 1 if t is None else t
        self.sent[key] += 1
        self.pub.send_multipart([key.encode(), pack(self.t[key], math.sin(self.t[key]))])

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.out.poll(max(1, int(1000 * left))):
                key, payload = self.out.recv_multipart()
                record = msgpack.unpackb(payload)
                if key == b"$stats":
                    self.stats = record
                else:
                    self.ns[key.decode()].append(record["n"])

    def answered(self) -> None:
        """Wait until every point sent has its forecast."""
        deadline = time.monotonic() + WAIT
        while any(len(self.ns[k]) < n for k, n in self.sent.items()):
            assert time.monotonic() < deadline, f"forecasts missing: sent {dict(self.sent)}"
            self.pump(0.05)

    def keep_busy(self, busy: list[str], until) -> dict:
        """Send a point to each busy stream every PACE s until a $stats satisfies `until`."""
        deadline = time.monotonic() + WAIT
        while not (self.stats and until(self.stats)):
            assert time.monotonic() < deadline, f"no matching $stats in time: {self.stats}"
            for key in busy:
                self.send(key)
            self.pump(PACE)
        return self.stats


def saved_keys(state: Path) -> set[str]:
    return {k for p in state.glob("d*-b*.npz") for k in checkpoint.read_meta(p)["keys"]}


def same_state(a: Fleet, b: Fleet, key: str) -> None:
    want = b.export(np.array([b.index[key]]))
    for name, got in a.export(np.array([a.index[key]])).items():
        np.testing.assert_array_equal(got, want[name], err_msg=f"{key} {name}")


def forgot_lines(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"forgot (\d+) streams", text)]


def test_quiet_streams_are_forgotten_and_come_back_fresh_while_busy_ones_keep_learning(ctx, daemon):
    d = daemon("--forget-after", FORGET)
    feed = Feed(ctx, d)
    quiet, busy = [f"quiet-{i}" for i in range(4)], ["busy-0", "busy-1"]
    for _ in range(3):  # quiet streams first: forgetting them moves the busy ones' rows
        for key in quiet + busy:
            feed.send(key)
    feed.answered()
    assert all(feed.ns[k] == [1, 2, 3] for k in quiet)

    st = feed.keep_busy(busy, until=lambda st: st["forgotten"] >= len(quiet))
    assert st["forgotten"] == len(quiet) and st["streams"] == len(busy)
    assert st["rejected"] == {}
    assert sum(forgot_lines(d.text())) == len(quiet)
    assert "quiet-0" in d.text() and "busy-" not in " ".join(re.findall(r"forgot .*", d.text()))

    feed.send("quiet-0", t=0.5)  # before its old last t: accepted all the same, as a new stream
    for key in busy:
        feed.send(key)
    feed.answered()
    assert feed.ns["quiet-0"] == [1, 2, 3, 1]
    for key in busy:  # never forgotten: every forecast counts on
        assert feed.ns[key] == list(range(1, feed.sent[key] + 1))
    st = feed.keep_busy([], until=lambda st: st["streams"] == len(busy) + 1)
    assert st["forgotten"] == len(quiet)
    assert d.stop() == 0


def test_a_forgotten_stream_leaves_the_state_dir_and_stays_gone_after_a_restart(ctx, daemon, tmp_path):
    state = tmp_path / "state"
    d = daemon("--forget-after", FORGET, "--state-dir", str(state))
    feed = Feed(ctx, d)
    for _ in range(3):
        for key in ("b", "a"):
            feed.send(key)
    feed.answered()
    feed.keep_busy(["a"], until=lambda st: st["forgotten"] == 1)
    feed.answered()
    assert d.stop() == 0
    assert saved_keys(state) == {"a"}

    # Loaded streams count as seen at the start; a long threshold keeps this check free of timing.
    d = daemon("--forget-after", "60", "--state-dir", str(state))
    again = Feed(ctx, d)
    again.send("a", t=feed.t["a"] + 1)
    again.send("b", t=1)  # its old t was 3: a restored "b" would reject this point as late
    again.answered()
    assert again.ns == {"a": [feed.sent["a"] + 1], "b": [1]}
    assert d.stop() == 0
    assert saved_keys(state) == {"a", "b"}


def test_streams_forgotten_while_a_checkpoint_is_copied_in_steps_leave_it_consistent(tmp_path):
    """The daemon's own forget and save paths, in process, with the times given to learn_round."""
    state = tmp_path / "state"
    ends = {"sub": (f"@ipc://{tmp_path}/in",), "pub": f"@ipc://{tmp_path}/out"}
    server = Server(Config(**ends, state_dir=str(state), forget_after=5.0, settings=SETTINGS))
    try:
        server.restore()
        server.open()  # the forecasts go out on its PUB, to nobody
        keys = [f"s{i}" for i in range(200)]
        old, kept = keys[::2], keys[1::2]  # interleaved: removals move kept streams' rows
        server.learn_round(1, [(k, Point(1.0, (float(i),))) for i, k in enumerate(old)], now=0.0)
        server.learn_round(1, [(k, Point(1.0, (-float(i),))) for i, k in enumerate(kept)], now=10.0)
        fleets, ck = server.fleets, server.upkeep.ck
        assert server.upkeep.news(fleets)  # what `Upkeep.beat` asks before it starts a save
        assert ck.start(fleets, budget=0)  # copies bucket 0 only; the rest in later steps
        first = {k for k in keys if bucket_of(k, checkpoint.BUCKETS) == 0}
        assert set(old) & first and set(kept) & first

        server.forget(before=5.0)
        assert sorted(server.home) == sorted(kept) and server.stats.forgotten == len(old)
        server.forget(before=5.0)  # the kept streams' times moved with their rows
        assert server.stats.forgotten == len(old)
        fleet = fleets[1]
        while ck.copying:
            ck.step(fleets, budget=0)
        assert ck.wait(WAIT)
        loaded, _ = checkpoint.load(state, SETTINGS)
        assert set(loaded[1].keys) == set(kept) | (set(old) & first)  # bucket 0 was copied before
        for k in kept:  # each kept stream saved as itself, wherever its row moved
            same_state(loaded[1], fleet, k)

        # As many points learned since as were forgotten: the count of learned points is back where
        # it was when the save began, yet the stop must still save.
        server.learn_round(1, [(k, Point(2.0, (0.5,))) for k in kept], now=11.0)
        assert learned(fleets) == len(keys)
        assert server.upkeep.stop(fleets) == 0
        loaded, _ = checkpoint.load(state, SETTINGS)
        assert sorted(loaded[1].keys) == sorted(kept)
        for k in kept:
            same_state(loaded[1], fleet, k)
            assert loaded[1].last_t[loaded[1].index[k]] == 2.0

        server.forget(before=20.0)  # all of them: the emptied fleet's buckets are written empty
        assert server.home == {} and server.upkeep.stop(fleets) == 0
        assert saved_keys(state) == set()
    finally:
        server.close()


def test_forget_after_is_zero_by_default_and_never_negative(tmp_path):
    assert load(env={}).forget_after == 0.0
    assert load(env={"LSTMSTREAM_FORGET_AFTER": "86400"}).forget_after == 86400.0
    f = tmp_path / "svc.toml"
    f.write_text("forget_after = 600\n")
    assert load(env={}, path=f).forget_after == 600.0
    for bad in ("-1", "nan", "soon"):
        with pytest.raises(ConfigError, match="forget_after"):
            load(env={"LSTMSTREAM_FORGET_AFTER": bad})
    r = CliRunner().invoke(main, ["run", "--forget-after", "-1"])
    assert r.exit_code == 2 and "--forget-after" in r.output
