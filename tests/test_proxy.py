import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import zmq
from support import CLI, run_cli, wait_for_line


@contextlib.contextmanager
def clients(proc: subprocess.Popen, topic: bytes):
    """A PUB on the proxy's frontend and a SUB (on `topic`) on its backend, once it says ready;
    at the end the proxy is killed if it still runs."""
    ctx = zmq.Context()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    try:
        front, back = re.findall(r"tcp://127\.0\.0\.1:\d+", wait_for_line(proc, "ready", timeout=20.0))
        pub.connect(front)
        sub.connect(back)
        sub.setsockopt(zmq.SUBSCRIBE, topic)
        yield pub, sub
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        pub.close(linger=0)
        sub.close(linger=0)
        ctx.term()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_publisher_reaches_a_subscriber_through_the_proxy_and_a_signal_stops_it(sig):
    proc = subprocess.Popen(
        [*CLI, "proxy", "--frontend", "@tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*"],
        stderr=subprocess.PIPE,
        text=True,
    )
    with clients(proc, b"sensor") as (pub, sub):
        got = None
        deadline = time.monotonic() + 20
        while got is None and time.monotonic() < deadline:  # until the subscription has travelled upstream
            pub.send_multipart([b"other", b"x"])
            pub.send_multipart([b"sensor-1", b"\x81\xa1v\x01"])
            if sub.poll(100):
                got = sub.recv_multipart()
        assert got == [b"sensor-1", b"\x81\xa1v\x01"]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "stopped" in err


def test_a_taken_port_is_a_clear_error(ctx):
    taken = ctx.socket(zmq.PUB)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    res = run_cli(
        "proxy", "--frontend", f"@tcp://127.0.0.1:{port}", "--backend", "@tcp://127.0.0.1:*", timeout=30
    )
    assert res.returncode != 0 and "proxy:" in res.stderr and "Traceback" not in res.stderr


def test_under_systemd_it_says_ready_pings_the_watchdog_and_says_stopping(tmp_path):
    """A real AF_UNIX datagram socket stands in for systemd's notify socket."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        s.settimeout(20)
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}  # a ping every 0.2 s
        proc = subprocess.Popen(
            [*CLI, "proxy", "--frontend", "@tcp://127.0.0.1:*", "--backend", "@tcp://127.0.0.1:*"],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            first = s.recv(4096).decode().split("\n")
            assert "READY=1" in first and any(f.startswith("STATUS=forwarding tcp://") for f in first)
            assert s.recv(4096) == b"WATCHDOG=1"
            assert s.recv(4096) == b"WATCHDOG=1"
            proc.send_signal(signal.SIGTERM)
            while (msg := s.recv(4096)) == b"WATCHDOG=1":
                pass
            assert msg == b"STOPPING=1"
            _, err = proc.communicate(timeout=20)
            assert proc.returncode == 0, err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


FAILING_FORWARDER = """
import sys
import zmq
from lstmstream.proxy import serve

def forward(xsub, xpub, capture, control):
    # a real forwarder for one subscription and one message, then a failure (a bug, a broken socket)
    xsub.send(xpub.recv())
    xpub.send_multipart(xsub.recv_multipart())
    raise RuntimeError("forwarder broke")

sys.exit(serve("@tcp://127.0.0.1:*", "@tcp://127.0.0.1:*", forward=forward))
"""


def test_a_dead_forwarder_ends_the_proxy_with_status_1_for_systemd_to_restart(tmp_path):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        s.settimeout(20)
        env = {**os.environ, "NOTIFY_SOCKET": str(path)}
        proc = subprocess.Popen(
            [sys.executable, "-c", FAILING_FORWARDER], stderr=subprocess.PIPE, text=True, env=env
        )
        with clients(proc, b"") as (pub, sub):
            assert "READY=1" in s.recv(4096).decode().split("\n")
            deadline = time.monotonic() + 20
            while proc.poll() is None and time.monotonic() < deadline:
                pub.send_multipart([b"sensor-1", b"x"])  # until the subscription has travelled upstream
                time.sleep(0.05)
            _, err = proc.communicate(timeout=20)
            assert proc.returncode == 1, err
            assert "forwarder broke" in err and "exiting with status 1" in err
            assert sub.poll(5000) and sub.recv_multipart() == [b"sensor-1", b"x"]  # it did forward
