"""`lstmstream keys PATH/NAME`, run as a real subprocess."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time

import pytest
import zmq
from support import CLI

from lstmstream.curve import CurveServer, apply_client, load_public


def keys(target, umask=0o022) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "keys", str(target)], capture_output=True, text=True, timeout=60, umask=umask
    )


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_keys_writes_a_private_secret_and_prints_the_public_key(tmp_path, umask):
    done = keys(tmp_path / "keys" / "sensor-7", umask)
    assert done.returncode == 0, done.stderr
    public, secret = tmp_path / "keys" / "sensor-7.key", tmp_path / "keys" / "sensor-7.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path / "keys")) == ["sensor-7.key", "sensor-7.key_secret"]
    assert str(public) in done.stdout and str(secret) in done.stdout
    assert load_public(public).decode() in done.stdout


def test_keys_refuses_to_overwrite(tmp_path):
    assert keys(tmp_path / "server").returncode == 0
    before = (tmp_path / "server.key_secret").read_bytes()
    again = keys(tmp_path / "server")
    assert again.returncode == 1
    assert "already exists" in again.stderr and "Traceback" not in again.stderr
    assert (tmp_path / "server.key_secret").read_bytes() == before


def test_keys_refuses_a_hidden_name(tmp_path):
    done = keys(tmp_path / ".sneaky")
    assert done.returncode == 1 and "bad key name" in done.stderr
    assert os.listdir(tmp_path) == []


def test_issued_keys_open_a_curve_connection(tmp_path):
    for name in ("server", "sensor"):
        assert keys(tmp_path / "keys" / name).returncode == 0
    clients = tmp_path / "clients"
    clients.mkdir()
    shutil.copy(tmp_path / "keys" / "sensor.key", clients)
    ctx = zmq.Context()
    curve = CurveServer(ctx, tmp_path / "keys" / "server.key_secret", clients)
    try:
        inbox = ctx.socket(zmq.SUB)
        inbox.subscribe(b"")
        endpoint = curve.bind(inbox, "tcp://127.0.0.1:*")
        sensor = ctx.socket(zmq.PUB)
        apply_client(sensor, tmp_path / "keys" / "server.key", tmp_path / "keys" / "sensor.key_secret")
        sensor.connect(endpoint)
        deadline = time.monotonic() + 10
        while not inbox.poll(10):
            assert time.monotonic() < deadline, "no message through CURVE"
            sensor.send(b"point")
        assert inbox.recv() == b"point"
    finally:
        curve.stop()
        ctx.destroy(linger=0)
