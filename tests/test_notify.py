import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import uuid

import pytest

from lstmstream import notify


@pytest.fixture
def listener(tmp_path):
    """A real AF_UNIX datagram socket standing in for systemd's notify socket (a path)."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        s.settimeout(10)
        yield s, {"NOTIFY_SOCKET": str(path)}


@pytest.fixture
def abstract_listener():
    name = f"lstmstream-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(10)
        yield s, {"NOTIFY_SOCKET": "@" + name}


def fields(s: socket.socket) -> list[str]:
    return s.recv(4096).decode().split("\n")


@pytest.mark.parametrize("which", ["listener", "abstract_listener"])
def test_each_message_arrives_as_one_datagram(which, request):
    s, env = request.getfixturevalue(which)
    assert notify.ready("3 streams\n12.5 points/s", env=env)
    assert fields(s) == ["READY=1", "STATUS=3 streams 12.5 points/s"]
    assert notify.status("4 streams", env=env)
    assert fields(s) == ["STATUS=4 streams"]
    assert notify.watchdog(env=env)
    assert fields(s) == ["WATCHDOG=1"]
    assert notify.extend_timeout(2.5, env=env)
    assert fields(s) == ["EXTEND_TIMEOUT_USEC=2500000"]
    assert notify.reloading(env=env)
    reload = fields(s)
    assert reload[0] == "RELOADING=1" and reload[1].startswith("MONOTONIC_USEC=")
    assert int(reload[1].split("=")[1]) > 0
    assert notify.ready(env=env)
    assert fields(s) == ["READY=1"]
    assert notify.stopping(env=env)
    assert fields(s) == ["STOPPING=1"]


def test_the_process_environment_is_used_by_default(listener, monkeypatch):
    s, env = listener
    monkeypatch.setenv("NOTIFY_SOCKET", env["NOTIFY_SOCKET"])
    assert notify.ready()
    assert fields(s) == ["READY=1"]


def test_nothing_happens_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.ready("x") is False
    assert notify.watchdog(env={"NOTIFY_SOCKET": ""}) is False
    assert notify.watchdog_interval({"WATCHDOG_USEC": "1000000"}) is None
    assert notify.Watchdog({}).due() is False


def test_a_missing_socket_is_logged_not_raised(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, "lstmstream.notify"):
        assert notify.ready(env={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False
    assert "sd_notify to" in caplog.text and "gone" in caplog.text


@pytest.mark.parametrize(
    ("extra", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_when_it_is_ours(extra, interval):
    assert notify.watchdog_interval({"NOTIFY_SOCKET": "/run/x", **extra}) == interval


def test_watchdog_is_due_at_once_then_every_interval():
    now = [100.0]
    dog = notify.Watchdog({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000"}, clock=lambda: now[0])
    assert dog.due()
    now[0] += 1.9
    assert not dog.due()
    now[0] += 0.1
    assert dog.due()
    assert not dog.due()


SERVICE = textwrap.dedent(
    """
    import signal, time
    from lstmstream import notify

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    notify.ready("0 streams")
    dog = notify.Watchdog()
    while not stop:
        if dog.due():
            notify.watchdog()
        time.sleep(0.01)
    notify.stopping()
    """
)


def test_a_service_loop_pings_the_watchdog_and_stops_cleanly(listener):
    """The protocol as systemd sees it: READY, periodic WATCHDOG, STOPPING on SIGTERM, exit 0."""
    s, env = listener
    inherited = {k: v for k, v in os.environ.items() if k != "WATCHDOG_PID"}
    env = {**inherited, **env, "WATCHDOG_USEC": "100000"}
    proc = subprocess.Popen([sys.executable, "-c", SERVICE], env=env)
    try:
        assert fields(s) == ["READY=1", "STATUS=0 streams"]
        for _ in range(3):
            assert fields(s) == ["WATCHDOG=1"]
        proc.send_signal(signal.SIGTERM)
        while (msg := fields(s)) == ["WATCHDOG=1"]:
            pass
        assert msg == ["STOPPING=1"]
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
