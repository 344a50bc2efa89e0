"""The daemon as a service, end to end: the real `lstmstream run` in subprocesses, real ZeroMQ
sockets (ipc:// in tmp_path, or tcp on ephemeral ports), real signals, real state dirs, and a real
AF_UNIX datagram socket standing in for systemd's notify socket."""

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from support import CLI, WAIT, Daemon

from lstmstream import records
from lstmstream.checkpoint import BUCKETS, Checkpointer, bucket_of
from lstmstream.learner import Fleet, Settings, load_init

SETTINGS = Settings(hidden=8, window=4)
SMALL = ["--hidden", "8", "--window", "4", "--stats-every", "0.2"]
EXAMPLE = Path(__file__).parent.parent / "services" / "example.toml"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without systemd's or lstmstream's variables, plus `extra`."""
    drop = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("LSTMSTREAM_")}
    return {**env, **extra}


@pytest.fixture
def run(tmp_path, procs):
    """start(name, *args, env={}, endpoints=True): `lstmstream run` with ipc endpoints named after `name`."""

    def start(name: str, *args: str, env: dict | None = None, endpoints: bool = True) -> Daemon:
        r = Daemon(
            None, f"ipc://{tmp_path}/{name}.in", f"ipc://{tmp_path}/{name}.out", tmp_path / f"{name}.log"
        )
        ends = ["--sub", "@" + r.sub, "--pub", "@" + r.pub] if endpoints else []
        with open(r.log, "w") as log:
            r.proc = subprocess.Popen([*CLI, "run", *ends, *args], stderr=log, env=clean_env(**(env or {})))
        procs.append(r.proc)
        return r

    return start


class Client:
    """A sender on the daemon's SUB and a subscriber on its PUB, both proven connected."""

    def __init__(self, ctx: zmq.Context, sub: str, pub: str):
        self.out = ctx.socket(zmq.SUB)
        self.out.setsockopt(zmq.SUBSCRIBE, b"")
        self.out.connect(pub)
        self.pub = ctx.socket(zmq.XPUB)
        self.pub.connect(sub)
        assert self.pub.poll(int(WAIT * 1000)), "the daemon never subscribed"
        self.pub.recv()
        self.next_stats()

    def next_stats(self) -> dict:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.out.poll(100):
                key, payload = self.out.recv_multipart()
                if key == b"$stats":
                    return msgpack.unpackb(payload)
        raise AssertionError("no $stats in time")

    def send(self, key: str, points: list[tuple[float, object]]) -> None:
        """The points of one stream, in batch messages of up to 10."""
        for at in range(0, len(points), 10):
            batch = [{"t": t, "v": v} for t, v in points[at : at + 10]]
            self.pub.send_multipart([key.encode(), msgpack.packb(batch)])

    def forecasts(self, count: int) -> dict[str, list[dict]]:
        """The next `count` forecasts, by stream key."""
        out, got = defaultdict(list), 0
        deadline = time.monotonic() + WAIT
        while got < count and time.monotonic() < deadline:
            if self.out.poll(100):
                key, payload = self.out.recv_multipart()
                if key != b"$stats":
                    out[key.decode()].append(msgpack.unpackb(payload))
                    got += 1
        assert got == count, f"{got} of {count} forecasts arrived"
        return out


def reference(streams: dict[str, list], settings: Settings = SETTINGS, init=None) -> dict[str, list[dict]]:
    """What `Fleet.learn` gives each stream, one point at a time."""
    out = {}
    for key, points in streams.items():
        fleet = Fleet(settings, len(np.atleast_1d(points[0][1])), init=init)
        fleet.add(key)
        out[key] = []
        for t, v in points:
            y = np.atleast_1d(np.asarray(v, float))[None]
            out[key] += records.forecasts(fleet.learn(np.zeros(1, np.int64), y, np.array([t], float)))
    return out


def assert_same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g["t"], g["n"]) == (w["t"], w["n"])
        for f in ("v", "lo", "hi", "err", "score"):
            if w[f] is None:
                assert g[f] is None
            else:
                np.testing.assert_allclose(g[f], w[f], rtol=0, atol=1e-9)


def streams(n: int) -> dict[str, list]:
    """Three streams: one on a 5-minute epoch clock, one of 2-value points, one plain counter."""
    rng = np.random.default_rng(5)
    return {
        "site/temp": [(1.7e9 + 300 * i, float(20 + np.sin(i / 6) + rng.normal(0, 0.1))) for i in range(n)],
        "site/flow": [(float(i), [float(rng.normal()), float(i % 7)]) for i in range(n)],
        "site/rare": [(float(3 * i), float(i % 4)) for i in range(n)],
    }


def saved_n(state: Path, key: str, size: int = 1) -> int:
    """Points of `key` in the state dir now (0 if not there); read-only, so safe while saving."""
    path = state / f"d{size}-b{bucket_of(key, BUCKETS):03d}.npz"
    if not path.exists():
        return 0
    with np.load(path, allow_pickle=False) as z:
        keys = json.loads(z["meta"].tobytes())["keys"]
        return int(z["scaler.n"][keys.index(key)]) if key in keys else 0


def seed_state(state: Path, keys: list[str], settings: Settings = SETTINGS, points: int = 5) -> None:
    """A state dir holding `keys`, each with `points` points learned (written by the real Checkpointer)."""
    fleet = Fleet(settings, 1)
    rows = np.array([fleet.add(k) for k in keys])
    for t in range(points):
        fleet.learn(rows, np.full((len(rows), 1), float(t % 3)), np.full(len(rows), float(t)))
    with Checkpointer(state, settings) as ck:
        assert ck.save({1: fleet})


def test_sigterm_mid_stream_then_restart_on_the_state_dir_resumes_exactly(ctx, run, tmp_path):
    data, state = streams(120), tmp_path / "state"
    whole = run("whole", *SMALL)
    first = run("first", *SMALL, "--state-dir", str(state))
    c_whole, c_first = Client(ctx, whole.sub, whole.pub), Client(ctx, first.sub, first.pub)
    for key, points in data.items():
        c_whole.send(key, points)
        c_first.send(key, points[:80])
    seen: set[str] = set()
    while seen != set(data):  # it is learning every stream: stop it in the middle
        seen |= set(c_first.forecasts(1))
    assert first.stop() == 0
    assert "checkpoint: " in first.text()
    done = {key: saved_n(state, key, 2 if key == "site/flow" else 1) for key in data}
    assert all(1 <= m <= 80 for m in done.values()), done

    second = run("second", *SMALL, "--state-dir", str(state))
    c_second = Client(ctx, second.sub, second.pub)
    for key, points in data.items():
        c_second.send(key, points[done[key] :])
    resumed = c_second.forecasts(sum(len(p) - done[k] for k, p in data.items()))
    uninterrupted = c_whole.forecasts(3 * 120)
    for key in data:
        assert [r["n"] for r in resumed[key]] == list(range(done[key] + 1, 121))
        assert_same(resumed[key], uninterrupted[key][done[key] :])
    for key, want in reference(data).items():
        assert_same(uninterrupted[key], want)
    assert "3 streams loaded" in second.text()
    assert second.stop() == 0 and whole.stop() == 0


def test_sigkill_loses_at_most_the_points_since_the_last_checkpoint_and_serves_on(ctx, run, tmp_path):
    state = tmp_path / "state"
    points = [(float(t), float(np.sin(t / 4))) for t in range(80)]
    d = run("killed", *SMALL, "--state-dir", str(state), "--checkpoint-every", "0.3")
    c = Client(ctx, d.sub, d.pub)
    c.send("k", points[:30])
    c.forecasts(30)
    deadline = time.monotonic() + WAIT
    while saved_n(state, "k") < 30:  # a periodic checkpoint has the first 30 points
        assert time.monotonic() < deadline, "no checkpoint with 30 points"
        time.sleep(0.05)
    c.send("k", points[30:60])
    c.forecasts(30)
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL

    again = run("again", *SMALL, "--state-dir", str(state))
    c = Client(ctx, again.sub, again.pub)
    c.send("k", points[60:])
    c.send("new", points[:3])
    got = c.forecasts(23)
    kept = got["k"][0]["n"] - 1  # points the restart found in the state dir
    assert 30 <= kept <= 60
    want = reference({"k": points[:kept] + points[60:]})["k"][kept:]
    assert_same(got["k"], want)
    assert [r["n"] for r in got["new"]] == [1, 2, 3]
    assert again.stop() == 0


def test_corrupt_truncated_and_foreign_state_files_are_reported_and_skipped(ctx, run, tmp_path):
    state = tmp_path / "state"
    keys = {bucket_of(f"s{i}", BUCKETS): f"s{i}" for i in range(12)}
    good, hurt, gone = list(keys.values())[:3]
    d = run("writer", *SMALL, "--state-dir", str(state))
    c = Client(ctx, d.sub, d.pub)
    for key in (good, hurt, gone):
        c.send(key, [(float(t), float(t % 3)) for t in range(10)])
    c.forecasts(30)
    assert d.stop() == 0
    shard = lambda key: state / f"d1-b{bucket_of(key, BUCKETS):03d}.npz"  # noqa: E731
    shard(hurt).write_bytes(shard(hurt).read_bytes()[:500])  # truncated
    shard(gone).write_bytes(b"PK\x03\x04 not a zip at all")  # corrupt
    empty = next(b for b in range(BUCKETS) if b not in keys)
    np.savez(state / f"d1-b{empty:03d}.npz", weights=np.zeros(3))  # foreign: an npz, not ours
    (state / "notes.txt").write_text("left by an operator")

    d = run("reader", *SMALL, "--state-dir", str(state))
    c = Client(ctx, d.sub, d.pub)
    for key in (good, hurt, gone):
        c.send(key, [(100.0, 1.0)])
    got = c.forecasts(3)
    assert got[good][0]["n"] == 11  # continues
    assert got[hurt][0]["n"] == got[gone][0]["n"] == 1  # starts fresh
    log = d.text()
    for path in (shard(hurt), shard(gone), state / f"d1-b{empty:03d}.npz"):
        assert f"skipping checkpoint {path}" in log
    assert "1 streams loaded" in log
    twin = run("twin", *SMALL, "--state-dir", str(state))  # a second daemon on the same dir
    assert twin.proc.wait(WAIT) != 0
    assert f"state dir {state} is in use by another process" in twin.text()
    assert d.stop() == 0


def test_a_state_dir_of_another_hidden_size_is_refused_naming_the_setting(run, tmp_path):
    state = tmp_path / "state"
    seed_state(state, ["a", "b"])
    before = {p.name: p.read_bytes() for p in state.iterdir()}
    d = run("bigger", "--hidden", "16", "--window", "4", "--state-dir", str(state))
    assert d.proc.wait(WAIT) != 0
    log = d.text()
    assert "hidden=8" in log and "hidden=16" in log and "Traceback" not in log
    assert {p.name: p.read_bytes() for p in state.iterdir()} == before  # nothing mixed in


@pytest.fixture
def notify_socket(tmp_path):
    """A real AF_UNIX datagram socket standing in for systemd's $NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        s.settimeout(WAIT)
        yield s, str(path)


def messages(s: socket.socket, until: str, status: bool = True) -> list[list[str]]:
    """Datagrams (each a list of KEY=value fields) up to and including one with the field `until`;
    status=False leaves out the periodic STATUS= ones."""
    out = []
    while not out or until not in out[-1]:
        fields = s.recv(4096).decode().split("\n")
        if status or not fields[0].startswith("STATUS="):
            out.append(fields)
    return out


def test_sd_notify_ready_status_watchdog_stopping(run, tmp_path, notify_socket):
    s, path = notify_socket
    state = tmp_path / "state"
    seed_state(state, ["a", "b"])
    files = {p.name: p.stat().st_mtime_ns for p in state.iterdir()}
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"}
    d = run("notified", *SMALL, "--state-dir", str(state), "--checkpoint-every", "0.1", env=env)
    start = messages(s, "READY=1")
    assert all(Path(ep.removeprefix("ipc://")).exists() for ep in (d.sub, d.pub))  # bound before READY
    assert any(f[0].startswith("EXTEND_TIMEOUT_USEC=") for f in start[:-1])  # while loading
    assert "STATUS=2 streams, serving" in start[-1]
    seen = defaultdict(int)
    while seen["WATCHDOG=1"] < 3 or seen["STATUS"] < 2:
        (field,) = s.recv(4096).decode().split("\n")
        seen[field if field == "WATCHDOG=1" else field.split("=")[0]] += 1
        if field.startswith("STATUS="):
            assert re.fullmatch(r"STATUS=2 streams, \d+ points/s", field)
    d.proc.send_signal(signal.SIGTERM)
    assert messages(s, "STOPPING=1")[-1] == ["STOPPING=1"]
    assert d.proc.wait(WAIT) == 0
    assert {p.name: p.stat().st_mtime_ns for p in state.iterdir()} == files  # idle: nothing rewritten


def test_sighup_rereads_the_log_level_and_forget_after_from_the_config_file(run, tmp_path, notify_socket):
    s, path = notify_socket
    conf = tmp_path / "service.toml"
    toml = (
        'sub = ["@ipc://{0}/svc.in"]\npub = "@ipc://{0}/svc.out"\nhidden = 8\nwindow = 4\nlog_level = "{1}"\n'
    )
    conf.write_text(toml.format(tmp_path, "warning"))
    d = run("svc", "--config", str(conf), env={"NOTIFY_SOCKET": path}, endpoints=False)
    messages(s, "READY=1")
    assert " INFO " not in d.text()
    conf.write_text(toml.format(tmp_path, "info") + "forget_after = 3600\n")
    d.proc.send_signal(signal.SIGHUP)
    reload = messages(s, "READY=1", status=False)
    assert reload[0][0] == "RELOADING=1" and reload[0][1].startswith("MONOTONIC_USEC=")
    assert "reloaded: log level info, forget_after 3600 s" in d.text()
    conf.write_text("log_level = 'loud'\n")  # a broken file: reported, the level stays
    d.proc.send_signal(signal.SIGHUP)
    assert messages(s, "READY=1", status=False)[0][0] == "RELOADING=1"
    assert (
        "reload: log_level: 'loud' is not debug, info, warning or error; keeping log level info" in d.text()
    )
    assert d.proc.poll() is None
    assert d.stop() == 0
    assert "INFO stopping:" in d.text()


def test_run_init_starts_new_streams_from_a_fit_warm_start(ctx, run, tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("timestamp,value\n" + "".join(f"{i},{np.sin(i / 5):.6f}\n" for i in range(200)))
    model = tmp_path / "model.npz"
    fit = subprocess.run([*CLI, "fit", str(history), "--hidden", "8", "--window", "4", "--epochs", "1",
                          "--out", str(model)], capture_output=True, timeout=120)  # fmt: skip
    assert fit.returncode == 0, fit.stderr.decode()
    d = run("warm", *SMALL, "--init", str(model))
    c = Client(ctx, d.sub, d.pub)
    data = {"one": [(float(t), float(np.cos(t / 3))) for t in range(15)],
            "two": [(float(t), [float(t % 3), 1.0]) for t in range(15)]}  # fmt: skip
    for key, points in data.items():
        c.send(key, points)
    got = c.forecasts(30)
    warm = reference({"one": data["one"]}, init=load_init(model))["one"]
    assert_same(got["one"], warm)
    assert not np.allclose([r["v"] for r in warm], [r["v"] for r in reference(data)["one"]])
    assert_same(got["two"], reference(data)["two"])  # fit on 1-value points: seeded weights
    assert "2-value streams start from seeded weights" in d.text()
    assert d.stop() == 0

    bad = run("misfit", "--hidden", "16", "--window", "4", "--init", str(model))
    assert bad.proc.wait(WAIT) != 0
    assert "warm-start weights do not fit" in bad.text() and "Traceback" not in bad.text()


def test_the_example_service_definition_runs_as_is(ctx, run, tmp_path):
    state = tmp_path / "state"
    d = run("example", "--config", str(EXAMPLE), "--sub", "@tcp://127.0.0.1:*", "--pub", "@tcp://127.0.0.1:*",
            "--state-dir", str(state), "--stats-every", "0.2", endpoints=False)  # fmt: skip
    bound = {}
    deadline = time.monotonic() + WAIT
    while len(bound) < 2:
        assert time.monotonic() < deadline and d.proc.poll() is None, d.text()
        bound = dict(re.findall(r"(SUB|PUB) bind (tcp://127\.0\.0\.1:\d+)", d.text()))
        time.sleep(0.05)
    c = Client(ctx, bound["SUB"], bound["PUB"])
    c.send("room/temp", [(1.7e9 + 60 * i, 21.0 + i % 2) for i in range(5)])
    assert [r["n"] for r in c.forecasts(5)["room/temp"]] == [1, 2, 3, 4, 5]
    assert d.stop() == 0
    assert saved_n(state, "room/temp") == 5
    assert "hidden=32, window=16" in d.text()
