"""Two shards behind the real proxy, and `bench --e2e`: the real CLI in subprocesses, ipc:// sockets."""

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import msgpack
import zmq
from support import CLI, SMALL, WAIT, run_cli, wait_for_line, write_csv

from lstmstream.config import load
from lstmstream.shard import shard_of

KEYS, POINTS = 24, 12


def write_feed(path) -> list[tuple[str, int, float]]:
    """KEYS streams of POINTS points, interleaved by time, as a key,t,v CSV."""
    points = [
        (f"sensor-{i}", 1_700_000_000 + 60 * j, float((i + 1) * j % 7))
        for j in range(POINTS)
        for i in range(KEYS)
    ]
    write_csv(path, points)
    return points


def collect(subs: list[zmq.Socket], until) -> tuple[list[list[tuple[str, int]]], list[dict]]:
    """(key, t) of every forecast and the last $stats, per socket, until `until(stats)` holds for all."""
    got: list[list[tuple[str, int]]] = [[] for _ in subs]
    last: list[dict] = [{} for _ in subs]
    deadline = time.monotonic() + WAIT
    while not all(until(i, s) for i, s in enumerate(last)) and time.monotonic() < deadline:
        for i, sub in enumerate(subs):
            while sub.poll(0):
                key, payload = sub.recv_multipart()
                rec = msgpack.unpackb(payload)
                if key == b"$stats":
                    last[i] = rec
                else:
                    got[i].append((key.decode(), rec["t"]))
        time.sleep(0.01)
    return got, last


def test_two_shards_behind_the_proxy_give_every_point_exactly_one_forecast(tmp_path, procs, ctx):
    front, back = f"ipc://{tmp_path}/front", f"ipc://{tmp_path}/back"
    proxy = subprocess.Popen(
        [*CLI, "proxy", "--frontend", "@" + front, "--backend", "@" + back], stderr=subprocess.PIPE, text=True
    )
    procs.append(proxy)
    assert "ready" in wait_for_line(proxy, "ready")
    outs = [f"ipc://{tmp_path}/out{i}" for i in range(2)]
    subs = []
    for i, out in enumerate(outs):
        cmd = [
            *CLI,
            "run",
            "--sub",
            ">" + back,
            "--pub",
            "@" + out,
            "--shard",
            f"{i}/2",
            "--stats-every",
            "0.2",
        ]
        procs.append(subprocess.Popen([*cmd, *SMALL, "--log-level", "error"]))
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(out)
        subs.append(sub)

    # Until both daemons see messages through the proxy: one-frame probes, rejected and counted.
    probe = ctx.socket(zmq.PUB)
    probe.connect(front)
    deadline = time.monotonic() + WAIT
    seen = [False, False]
    while not all(seen) and time.monotonic() < deadline:
        probe.send(b"probe")
        for i, sub in enumerate(subs):
            while sub.poll(50):
                key, payload = sub.recv_multipart()
                seen[i] = seen[i] or (key == b"$stats" and msgpack.unpackb(payload)["received"] > 0)
    assert all(seen), "a daemon never received anything through the proxy"
    probe.close(linger=0)

    points = write_feed(tmp_path / "feed.csv")
    res = run_cli(
        "replay", str(tmp_path / "feed.csv"), "--pub", ">" + front, "--timeout", "20", timeout=WAIT * 2
    )
    assert res.returncode == 0, res.stderr

    want = [sorted((k, t) for k, t, _ in points if shard_of(k, 2) == i) for i in range(2)]
    got, last = collect(subs, lambda i, s: s.get("learned", 0) >= len(want[i]))
    for i in range(2):
        assert sorted(got[i]) == want[i]  # every point of the shard once: no loss, no duplicate
        assert {shard_of(k, 2) for k, _ in got[i]} == {i}
        assert last[i]["learned"] == len(want[i])
        assert last[i]["other_shard"] == len(want[1 - i])  # the other shard's points, ignored
        assert set(last[i]["rejected"]) <= {"frames"}  # only the probes
    assert sorted(got[0] + got[1]) == sorted((k, t) for k, t, _ in points)
    assert {k for k, _ in got[0]}.isdisjoint({k for k, _ in got[1]})
    assert min(Counter(k for k, _ in got[0] + got[1]).values()) == POINTS

    for p in procs[1:]:
        p.send_signal(signal.SIGTERM)
        assert p.wait(WAIT) == 0


def test_a_bad_shard_is_a_usage_error():
    res = run_cli("run", "--shard", "2/2", timeout=WAIT)
    assert res.returncode == 2 and "shard" in res.stderr and "Traceback" not in res.stderr


def test_bench_e2e_runs_the_daemon_through_sockets_and_ends_with_json():
    args = ["bench", "--e2e", "--streams", "20", "--points", "3", "--rate", "200", "--duration", "0.5"]
    res = run_cli(*args, *SMALL, "--json", timeout=WAIT * 2)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    out = json.loads(lines[-1])
    assert out["mode"] == "e2e" and out["streams"] == 20
    assert out["throughput_points"] == 60 and out["latency_points"] == 100
    assert out["lost"] == 0 and out["duplicates"] == 0 and out["rejected"] == 0
    assert out["points_per_s"] > 0 and out["bytes_per_stream"] > 0
    assert out["p50_ms"] <= out["p95_ms"] <= out["p99_ms"] <= out["max_ms"]
    assert "zero loss" in res.stdout and "p99" in res.stdout


def test_the_two_shard_example_services_split_one_feed_from_the_proxy():
    services = Path(__file__).parent.parent / "services"
    configs = [load(path=services / f"shard-{i}.toml", env={}) for i in range(2)]
    assert [c.shard for c in configs] == ["0/2", "1/2"]
    assert configs[0].sub == configs[1].sub and configs[0].pub != configs[1].pub
    assert configs[0].state_dir != configs[1].state_dir
