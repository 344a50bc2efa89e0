"""CURVE and hostile input, end to end: the real CLI in subprocesses, real sockets, real signals."""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from support import CLI, WAIT, Daemon, pack

from lstmstream.curve import CurveError, apply_client, create_keypair, load_secret

QUIET = 0.5  # seconds "nothing arrives" is watched, after an allowed peer proved the path works


def curve_args(keys) -> list[str]:
    return ["--curve-secret", str(keys["server_secret"]), "--curve-clients", str(keys["clients"])]


def client_args(keys, name: str) -> list[str]:
    return ["--curve-server", str(keys["server"]), "--curve-secret", str(keys[name])]


def socket(ctx, kind: int, keys=None, name: str | None = None) -> zmq.Socket:
    """A socket of `kind`; a CURVE client with key `name` when given, else plaintext."""
    s = ctx.socket(kind)
    s.linger = 0
    s.reconnect_ivl = 20
    if name:
        apply_client(s, keys["server"], keys[name])
    return s


def subscriber(ctx, d: Daemon, keys=None, name=None) -> zmq.Socket:
    s = socket(ctx, zmq.SUB, keys, name)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(d.pub)
    return s


def sender(ctx, d: Daemon, keys=None, name=None) -> zmq.Socket:
    """An XPUB connected to the daemon's SUB (call `subscribed` to wait for the daemon)."""
    s = socket(ctx, zmq.XPUB, keys, name)
    s.connect(d.sub)
    return s


def subscribed(s: zmq.Socket, seconds: float = WAIT) -> bool:
    """Did the daemon subscribe to this sender within `seconds`? (It can only after a handshake.)"""
    if s.poll(int(1000 * seconds)):
        s.recv()
        return True
    return False


def receive(s: zmq.Socket, seconds: float) -> list[tuple[str, dict]]:
    """Every message arriving within `seconds`."""
    got, end = [], time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if s.poll(int(1000 * left)):
            key, payload = s.recv_multipart()
            got.append((key.decode(), msgpack.unpackb(payload)))
    return got


def stats(s: zmq.Socket, until=lambda st: True) -> dict:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for key, payload in receive(s, 0.1):
            if key == "$stats" and until(payload):
                return payload
    raise AssertionError("no matching $stats in time")


def forecasts_until(s: zmq.Socket, done, step) -> list[tuple[str, dict]]:
    """Forecasts (no $stats) received while step() runs, until done(received)."""
    got, deadline = [], time.monotonic() + WAIT
    while not done(got):
        assert time.monotonic() < deadline, f"timed out with {len(got)} forecasts"
        step()
        got += [(k, r) for k, r in receive(s, 0.05) if k != "$stats"]
    return got


class Clock:
    """Strictly increasing t per stream key."""

    def __init__(self):
        self.t: dict[str, int] = {}

    def point(self, key: str) -> list[bytes]:
        self.t[key] = self.t.get(key, 0) + 1
        return [key.encode(), pack(self.t[key], float(self.t[key] % 5))]


# ---- CURVE -------------------------------------------------------------------------------------


def test_allowed_clients_replay_and_record_through_curve_with_the_cli(ctx, daemon, keys, tmp_path):
    d = daemon(*curve_args(keys))
    d.wait_log("PUB bind")
    data = tmp_path / "points.csv"
    data.write_text("key,t,v\n" + "".join(f"s/{j},{i},{(i * j) % 7}\n" for i in range(40) for j in range(2)))
    rec_csv = tmp_path / "rec.csv"
    rec = subprocess.Popen([*CLI, "record", "--sub", d.pub, "--prefix", "s/", "-o", str(rec_csv),
                            *client_args(keys, "b")])  # fmt: skip
    probe, clock = sender(ctx, d, keys, "a"), Clock()
    assert subscribed(probe)
    deadline = time.monotonic() + WAIT
    while not (rec_csv.exists() and "s/probe" in rec_csv.read_text()):
        assert time.monotonic() < deadline, "record (CURVE client b) never received a forecast"
        probe.send_multipart(clock.point("s/probe"))
        time.sleep(0.05)
    replay = subprocess.run([*CLI, "replay", str(data), "--pub", d.sub, *client_args(keys, "a")],
                            capture_output=True, timeout=WAIT)  # fmt: skip
    assert replay.returncode == 0, replay.stderr.decode()
    assert "sent 80 points" in replay.stderr.decode()
    watch = subscriber(ctx, d, keys, "a")
    final = stats(watch, lambda st: st["learned"] == 80 + clock.t["s/probe"])
    rows = []
    while len(rows) < 80:
        assert time.monotonic() < deadline + WAIT, f"{len(rows)} of 80 rows recorded"
        rows = [r for r in rec_csv.read_text().splitlines()[1:] if not r.startswith("s/probe")]
    rec.send_signal(signal.SIGTERM)
    assert rec.wait(WAIT) == 0
    assert rec_csv.read_text().startswith("key,t,v,lo,hi,err,score,n\n")
    assert sorted(r.split(",")[0] for r in rows) == ["s/0"] * 40 + ["s/1"] * 40
    assert final["curve"] == {"admitted": 4, "denied": 0}  # record, probe, replay, watch
    assert d.stop() == 0


def test_unlisted_and_plaintext_clients_inject_nothing_and_receive_nothing(ctx, daemon, keys):
    d = daemon(*curve_args(keys))
    good_out, good_in = subscriber(ctx, d, keys, "a"), sender(ctx, d, keys, "a")
    bad_out = {"x": subscriber(ctx, d, keys, "x"), "plain": subscriber(ctx, d)}
    bad_in = {"x": sender(ctx, d, keys, "x"), "plain": sender(ctx, d)}
    assert subscribed(good_in)
    clock = Clock()

    def send_all():
        good_in.send_multipart(clock.point("good"))
        for name, s in bad_in.items():
            s.send_multipart(clock.point(name))

    got = forecasts_until(good_out, lambda got: len(got) >= 10, send_all)
    final = stats(good_out, lambda st: st["curve"]["denied"] >= 2)  # x on both sockets
    assert {k for k, _ in got} == {"good"}
    assert final["streams"] == 1 and final["rejected"] == {}
    for name in bad_out:
        assert not subscribed(bad_in[name], QUIET), f"{name} completed a handshake on SUB"
        assert receive(bad_out[name], QUIET) == [], f"{name} read from PUB"
    assert final["curve"]["admitted"] == 2
    assert d.stop() == 0


def test_sighup_revokes_a_removed_key_and_drops_its_open_connections(ctx, daemon, keys):
    d = daemon(*curve_args(keys))
    outs = {n: subscriber(ctx, d, keys, n) for n in ("a", "b")}
    ins = {n: sender(ctx, d, keys, n) for n in ("a", "b")}
    assert all(subscribed(s) for s in ins.values())
    clock = Clock()

    def send_both():
        for n, s in ins.items():
            s.send_multipart(clock.point(f"{n}/before"))

    forecasts_until(outs["a"], lambda got: {"a/before", "b/before"} <= {k for k, _ in got}, send_both)
    (keys["clients"] / "a.key").unlink()
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("1 admitted (0 added, 1 revoked")

    def send_after():
        for n, s in ins.items():
            s.send_multipart(clock.point(f"{n}/after"))

    # b reconnects by itself; a's established connections were dropped and it is refused again.
    got = forecasts_until(outs["b"], lambda got: sum(k == "b/after" for k, _ in got) >= 5, send_after)
    assert "a/after" not in {k for k, _ in got}
    assert stats(outs["b"])["streams"] == 3  # a/before, b/before, b/after: nothing from a since
    assert "b/after" not in {k for k, _ in receive(outs["a"], QUIET)}, "a's open subscription survived"
    fresh = subscriber(ctx, d, keys, "a")
    assert receive(fresh, QUIET) == []
    assert d.stop() == 0


def test_curve_run_refuses_incomplete_or_unsafe_setups(daemon, keys, tmp_path):
    cases = {
        "curve_secret and curve_clients go together": ["--curve-secret", str(keys["server_secret"])],
        "must bind": [*curve_args(keys), "--sub", f">ipc://{tmp_path}/elsewhere"],
        "group or others can access it": curve_args(keys),
    }
    for message, args in cases.items():
        if message.startswith("group"):
            keys["server_secret"].chmod(0o644)
        d = daemon(*args)
        assert d.proc.wait(WAIT) != 0
        assert message in d.text(), d.text()


def test_clients_refuse_incomplete_or_unsafe_keys(keys, tmp_path):
    data = tmp_path / "p.csv"
    data.write_text("timestamp,value\n1,1\n")
    keys["a"].chmod(0o640)
    public_only = tmp_path / "public-only.key_secret"
    public_only.write_bytes(keys["server"].read_bytes())
    public_only.chmod(0o600)
    cases = {
        "--curve-server and --curve-secret go together": ["--curve-server", str(keys["server"])],
        "group or others can access it": client_args(keys, "a"),
        "holds no secret key": ["--curve-server", str(keys["server"]), "--curve-secret", str(public_only)],
    }
    commands = (["replay", str(data), "--timeout", "1"], ["record", "--count", "1"], ["tail"])
    for (message, args), command in zip(cases.items(), commands, strict=True):
        done = subprocess.run([*CLI, *command, *args], capture_output=True, timeout=WAIT)
        assert done.returncode != 0 and message in done.stderr.decode(), (command, done.stderr)


def acl(*entries: tuple[int, int, int]) -> bytes:
    """A POSIX access ACL in the kernel's xattr format: version 2, (tag, perm, id) entries."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


NOBODY = 0xFFFFFFFF  # the id field of entries that name no one


@pytest.mark.parametrize(
    ("named", "group_perm", "ok"),
    [(os.geteuid(), 0, True), (os.geteuid() + 4242, 0, False), (os.geteuid(), 4, False)],
)
def test_secret_as_systemd_credential_with_an_acl(tmp_path, named, group_perm, ok):
    """LoadCredential= on a tmpfs writes 0400 root:root plus `user:SERVICE:r` (stat shows 0440):
    accepted when the ACL names only this process's user; any other reader is refused."""
    _, secret = create_keypair(tmp_path, "server")
    secret.chmod(0o400)
    entries = [(1, 4, NOBODY), (2, 4, named), (4, group_perm, NOBODY), (0x10, 4, NOBODY), (0x20, 0, NOBODY)]
    try:
        os.setxattr(secret, "system.posix_acl_access", acl(*entries))
    except OSError as e:
        pytest.skip(f"{tmp_path} takes no POSIX ACLs: {e}")
    assert secret.stat().st_mode & 0o777 == 0o440
    if ok:
        assert len(load_secret(secret)[1]) == 40
    else:
        with pytest.raises(CurveError, match="mode 0440"):
            load_secret(secret)


def test_binding_the_network_without_curve_warns_loudly(daemon, keys, tmp_path):
    plain = daemon(sub="tcp://0.0.0.0:*")
    plain.wait_log("PUB bind")
    assert plain.stop() == 0
    warnings = [line for line in plain.text().splitlines() if "SECURITY" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "@tcp://0.0.0.0:*" in warnings[0]
    assert "inject points" in warnings[0]
    secured = daemon(*curve_args(keys), sub="tcp://0.0.0.0:*", pub=f"ipc://{tmp_path}/out2")
    secured.wait_log("PUB bind")
    assert secured.stop() == 0
    assert "SECURITY" not in secured.text()


# ---- hostile input ---------------------------------------------------------------------------


def test_key_flood_is_bounded_by_max_streams_and_known_streams_keep_learning(ctx, daemon):
    d = daemon("--max-streams", "5")
    out, pub = subscriber(ctx, d), sender(ctx, d)
    assert subscribed(pub)
    clock = Clock()
    first = [f"keep/{i}" for i in range(5)]
    for key in first:
        pub.send_multipart(clock.point(key))
    for i in range(50):
        pub.send_multipart(clock.point(f"flood/{i}"))
        pub.send_multipart(clock.point(first[i % 5]))
    final = stats(out, lambda st: st["learned"] == 55 and st["rejected"])
    assert final["rejected"] == {"max_streams": 50}
    assert final["streams"] == 5

    def send_first():
        for key in first:
            pub.send_multipart(clock.point(key))

    got = forecasts_until(out, lambda got: {k for k, _ in got} >= set(first), send_first)
    assert {k for k, _ in got} == set(first)
    assert d.stop() == 0
    assert "new stream past --max-streams 5" in d.text()


def big_point(t: float) -> bytes:
    """One valid point padded with ignored fields to about 108 KB (> the 64 KiB default)."""
    pad = {f"pad{i}": [1.5] * 4000 for i in range(3)}
    return msgpack.packb({"t": t, "v": 1.0, **pad})


@pytest.mark.parametrize(("limit", "admitted"), [(None, False), ("200000", True)])
def test_max_msg_size_default_and_configured(ctx, daemon, limit, admitted):
    assert len(big_point(1.0)) > 65_536
    d = daemon(*(["--max-msg-size", limit] if limit else []))
    out, pub = subscriber(ctx, d), sender(ctx, d)
    assert subscribed(pub)
    stats(out)
    pub.send_multipart([b"big", big_point(1.0)])
    # Past the limit libzmq drops the sender's connection; it reconnects, and the small ones flow.
    clock = Clock()
    got = forecasts_until(out, lambda got: sum(k == "small" for k, _ in got) >= 3,
                          lambda: pub.send_multipart(clock.point("small")))  # fmt: skip
    assert any(k == "big" for k, _ in got + receive(out, QUIET)) == admitted
    assert d.stop() == 0


class Boom:
    """Unpickling this would create the file `path`: proof that pickle ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_pickled_init_and_checkpoint_files_are_never_unpickled(daemon, tmp_path):
    marker = tmp_path / "unpickled"
    crafted = {
        "raw pickle": lambda p: p.write_bytes(pickle.dumps(Boom(marker))),
        "object array": lambda p: np.savez(p, W=np.array([Boom(marker)], dtype=object)),
    }
    for name, write in crafted.items():
        path = tmp_path / f"{name.replace(' ', '-')}.npz"
        write(path)
        d = daemon("--init", str(path))
        assert d.proc.wait(WAIT) != 0, name
        assert "pickled or object data refused" in d.text(), d.text()
    state = tmp_path / "state"
    state.mkdir()
    np.savez(state / "d1-b000.npz", meta=np.array([Boom(marker)], dtype=object))
    d = daemon("--state-dir", str(state))
    d.wait_log("PUB bind")
    assert d.stop() == 0
    assert "skipping checkpoint" in d.text() and "allow_pickle=False" in d.text()
    assert not marker.exists()
