"""CURVE keys and the ZAP allow-list, over real ZeroMQ sockets on 127.0.0.1."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from lstmstream.curve import (
    CurveError,
    CurveServer,
    apply_client,
    create_keypair,
    exposed,
    is_local,
    load_allowed,
    load_public,
    load_secret,
)

WAIT = 10.0  # seconds: the bound on every wait; a healthy run takes milliseconds
QUIET_MS = 200  # how long "nothing arrives" is watched, after the allowed peer proved the path works
HANDSHAKE_FAILED = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
}


@pytest.fixture
def server(ctx, keys):
    curve = CurveServer(ctx, keys["server_secret"], keys["clients"])
    yield curve
    curve.stop()


def socket(ctx, kind, curve_secret=None, server_public=None):
    sock = ctx.socket(kind)
    sock.linger = 0
    sock.reconnect_ivl = 20
    if curve_secret:
        apply_client(sock, server_public, curve_secret)
    return sock


class Events:
    """Counts failed (`count`) and succeeded handshakes and accepts on a server socket, via its monitor."""

    def __init__(self, sock):
        self.monitor = sock.get_monitor_socket()
        self.count = 0
        self.accepted = 0
        self.succeeded = 0

    def poll(self) -> Events:
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)["event"]
            self.count += event in HANDSHAKE_FAILED
            self.accepted += event == zmq.EVENT_ACCEPTED
            self.succeeded += event == zmq.EVENT_HANDSHAKE_SUCCEEDED
        return self


def curve_inbox(ctx, server) -> tuple[zmq.Socket, str, Events]:
    """A SUB taking everything, bound by `server` on an ephemeral port, and its handshake Events."""
    inbox = socket(ctx, zmq.SUB)
    inbox.subscribe(b"")
    endpoint = server.bind(inbox, "tcp://127.0.0.1:*")
    return inbox, endpoint, Events(inbox)


def curve_senders(ctx, keys, endpoint: str, *names: str) -> list[zmq.Socket]:
    """A CURVE client PUB per key name, all connected to `endpoint`."""
    senders = [socket(ctx, zmq.PUB, keys[name], keys["server"]) for name in names]
    for sender in senders:
        sender.connect(endpoint)
    return senders


def until(condition, step) -> None:
    """Run step() until condition() holds, for at most WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        step()


def drain(sock, ms=QUIET_MS) -> list[bytes]:
    got = []
    while sock.poll(ms):
        got.append(sock.recv())
    return got


def test_sub_server_takes_points_only_from_listed_keys(ctx, keys, server):
    inbox, endpoint, events = curve_inbox(ctx, server)
    senders = {
        b"a": socket(ctx, zmq.PUB, keys["a"], keys["server"]),
        b"x": socket(ctx, zmq.PUB, keys["x"], keys["server"]),
        b"plain": socket(ctx, zmq.PUB),
    }
    for sender in senders.values():
        sender.connect(endpoint)
    got: list[bytes] = []

    def send_and_collect():
        for tag, sender in senders.items():
            sender.send(tag)
        got.extend(drain(inbox, 10))

    until(lambda: b"a" in got and events.poll().count >= 2, send_and_collect)
    send_and_collect()
    got.extend(drain(inbox))
    assert set(got) == {b"a"}
    assert server.denied >= 1 and server.admitted >= 1


def test_pub_server_sends_forecasts_only_to_listed_keys(ctx, keys, server):
    outbox = socket(ctx, zmq.PUB)
    endpoint = server.bind(outbox, "tcp://127.0.0.1:*")
    events = Events(outbox)
    readers = {
        "a": socket(ctx, zmq.SUB, keys["a"], keys["server"]),
        "x": socket(ctx, zmq.SUB, keys["x"], keys["server"]),
        "plain": socket(ctx, zmq.SUB),
    }
    for reader in readers.values():
        reader.subscribe(b"")
        reader.connect(endpoint)
    received = {name: [] for name in readers}

    def publish_and_read():
        outbox.send(b"forecast")
        for name, reader in readers.items():
            received[name].extend(drain(reader, 5))

    until(lambda: received["a"] and events.poll().count >= 2, publish_and_read)
    for _ in range(5):
        publish_and_read()
    assert received["x"] == [] and received["plain"] == []
    assert drain(readers["x"]) == [] and drain(readers["plain"]) == []


def test_added_key_is_admitted_after_reload_without_dropping_others(ctx, keys, tmp_path, server):
    inbox, endpoint, events = curve_inbox(ctx, server)
    a, x = curve_senders(ctx, keys, endpoint, "a", "x")
    got: list[bytes] = []

    def send(sender, tag):
        sender.send(tag)
        got.extend(drain(inbox, 10))

    until(lambda: b"a" in got and events.poll().count >= 1, lambda: send(a, b"a") or send(x, b"x"))
    assert b"x" not in got + drain(inbox)

    os.link(tmp_path / "issued" / "x.key", keys["clients"] / "x.key")
    change = server.reload()
    assert (change.allowed, change.added, change.removed, change.problems) == (3, 1, 0, ())
    late = socket(ctx, zmq.PUB, keys["x"], keys["server"])
    late.connect(endpoint)
    got.clear()
    until(lambda: {b"x-late", b"a-still"} <= set(got), lambda: send(late, b"x-late") or send(a, b"a-still"))
    assert events.poll().succeeded == 2  # a once, late once: a was not made to reconnect


def test_revoked_key_is_cut_off_and_others_reconnect(ctx, keys, server):
    inbox, endpoint, events = curve_inbox(ctx, server)
    a, b = curve_senders(ctx, keys, endpoint, "a", "b")
    got: list[bytes] = []

    def send_both(tag_a: bytes, tag_b: bytes):
        a.send(tag_a)
        b.send(tag_b)
        got.extend(drain(inbox, 10))

    until(lambda: {b"a", b"b"} <= set(got), lambda: send_both(b"a", b"b"))
    drain(inbox)

    (keys["clients"] / "a.key").unlink()
    change = server.reload()
    assert (change.allowed, change.added, change.removed) == (1, 0, 1)
    got.clear()
    before = events.poll().count
    until(
        lambda: b"b-after" in got and events.poll().count > before,
        lambda: send_both(b"a-after", b"b-after"),
    )
    send_both(b"a-after", b"b-after")
    got.extend(drain(inbox))
    assert b"a-after" not in got

    fresh = socket(ctx, zmq.PUB, keys["a"], keys["server"])
    fresh.connect(endpoint)
    until(lambda: events.poll().count > before + 1, lambda: fresh.send(b"a-fresh") or time.sleep(0.01))
    assert b"a-fresh" not in drain(inbox)


def test_socket_outliving_the_zap_handler_admits_nobody(ctx, keys, server):
    inbox, endpoint, events = curve_inbox(ctx, server)
    server.stop()
    a = socket(ctx, zmq.PUB, keys["a"], keys["server"])
    a.connect(endpoint)
    # Depending on when the handler's inproc socket went away, the handshake fails or stalls.
    until(lambda: events.poll().accepted >= 1, lambda: time.sleep(0.01))
    for _ in range(QUIET_MS // 10):
        a.send(b"a")
        time.sleep(0.01)
    assert drain(inbox) == []
    with pytest.raises(CurveError, match="not running"):
        server.apply(socket(ctx, zmq.PUB))


def test_apply_refuses_a_socket_of_another_context(ctx, server):
    other = zmq.Context()
    try:
        with pytest.raises(CurveError, match="context"):
            server.apply(socket(other, zmq.PUB))
    finally:
        other.destroy(linger=0)


def test_one_curve_server_per_context(ctx, keys, server):
    with pytest.raises(CurveError, match="one CurveServer per zmq context"):
        CurveServer(ctx, keys["server_secret"], keys["clients"])


def test_server_refuses_missing_or_broken_client_dir(ctx, keys, tmp_path):
    with pytest.raises(CurveError, match="does not exist"):
        CurveServer(ctx, keys["server_secret"], tmp_path / "nowhere")
    (keys["clients"] / "junk.key").write_text("not a certificate\n")
    with pytest.raises(CurveError, match=r"junk\.key"):
        CurveServer(ctx, keys["server_secret"], keys["clients"])


def test_reload_skips_broken_files_and_fails_closed_without_dir(ctx, keys, server):
    (keys["clients"] / "junk.key").write_text('curve\n    public-key = "short"\n')
    change = server.reload()
    assert change.allowed == 2 and len(change.problems) == 1 and "junk.key" in change.problems[0]
    for path in keys["clients"].iterdir():
        path.unlink()
    keys["clients"].rmdir()
    change = server.reload()
    assert (change.allowed, change.removed) == (0, 2) and "does not exist" in change.problems[0]


def test_keypair_modes_and_round_trip(tmp_path):
    old = os.umask(0)
    try:
        public, secret = create_keypair(tmp_path / "new" / "dir", "sensor-1")
    finally:
        os.umask(old)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert (public.name, secret.name) == ("sensor-1.key", "sensor-1.key_secret")
    assert sorted(p.name for p in public.parent.iterdir()) == ["sensor-1.key", "sensor-1.key_secret"]
    pub, sec = load_secret(secret)
    assert load_public(public) == pub == zmq.curve_public(sec)
    assert load_allowed(public.parent) == (frozenset({pub}), ())


def test_keypair_never_overwrites(tmp_path):
    _, secret = create_keypair(tmp_path, "s")
    before = secret.read_bytes()
    with pytest.raises(CurveError, match="already exists"):
        create_keypair(tmp_path, "s")
    assert secret.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.key", "s.key_secret"]


@pytest.mark.parametrize("name", ["", ".hidden", "a/b"])
def test_keypair_refuses_bad_names(tmp_path, name):
    with pytest.raises(CurveError, match="bad key name"):
        create_keypair(tmp_path, name)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_secret_open_to_group_or_others_is_refused(tmp_path, mode):
    _, secret = create_keypair(tmp_path, "s")
    secret.chmod(mode)
    with pytest.raises(CurveError, match=f"mode {mode:04o}.*chmod 600"):
        load_secret(secret)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("garbage\n", "cannot load"),
        ('curve\n    public-key = "abc"\n    secret-key = "def"\n', "malformed"),
    ],
)
def test_missing_or_corrupt_secret_is_refused(tmp_path, content, message):
    path = tmp_path / "s.key_secret"
    if content is not None:
        path.write_text(content)
        path.chmod(0o600)
    with pytest.raises(CurveError, match=message):
        load_secret(path)


def test_public_file_or_mismatched_pair_is_refused_as_secret(tmp_path):
    public, secret = create_keypair(tmp_path, "s")
    public.chmod(0o600)
    with pytest.raises(CurveError, match="no secret key"):
        load_secret(public)
    other, _ = create_keypair(tmp_path, "t")
    text = secret.read_text().replace(load_public(public).decode(), load_public(other).decode())
    secret.write_text(text)
    with pytest.raises(CurveError, match="does not belong"):
        load_secret(secret)


def test_client_refuses_world_readable_secret(ctx, keys):
    Path(keys["a"]).chmod(0o644)
    with pytest.raises(CurveError, match="chmod 600"):
        apply_client(socket(ctx, zmq.PUB), keys["server"], keys["a"])


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://127.0.0.1:5555",
        "tcp://127.0.0.1:*",
        "tcp://127.9.8.7:1",
        "tcp://localhost:5555",
        "tcp://LOCALHOST:5555",
        "tcp://[::1]:5555",
        "tcp://[::ffff:127.0.0.1]:5555",
        "tcp://lo:5555",
        "ipc:///run/lstmstream/sub.sock",
        "inproc://points",
        "ws://127.0.0.1:8080/points",
        "@tcp://127.0.0.1:5555",
        ">ipc:///tmp/points",
    ],
)
def test_local_endpoints(endpoint):
    assert is_local(endpoint)


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://*:5555",
        "tcp://0.0.0.0:5555",
        "tcp://[::]:5555",
        "tcp://192.168.1.20:5555",
        "tcp://[fe80::1%eth0]:5555",
        "tcp://eth0:5555",
        "tcp://sensors.example.org:5555",
        "tcp://128.0.0.1:5555",
        "ws://*:8080/points",
        "epgm://eth0;239.192.1.1:5555",
        "no-transport",
        "@tcp://0.0.0.0:5555",
    ],
)
def test_exposed_endpoints(endpoint):
    assert not is_local(endpoint)


def test_exposed_keeps_order_and_drops_local():
    binds = ["tcp://127.0.0.1:5555", "tcp://*:5556", "ipc:///tmp/x", "tcp://10.0.0.1:1"]
    assert exposed(binds) == ["tcp://*:5556", "tcp://10.0.0.1:1"]
