"""Fixtures shared by the end-to-end tests (plain helpers are in support.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import zmq
from support import CLI, SMALL, WAIT, Daemon

from lstmstream.curve import create_keypair


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


@pytest.fixture
def procs():
    """Append subprocesses here: whatever still runs after the test is killed."""
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(WAIT)


@pytest.fixture
def daemon(tmp_path, procs):
    """start(*args, sub=None, pub=None): `lstmstream run` with a small model and $stats every 0.2 s,
    binding `sub` and `pub` (default: ipc endpoints in tmp_path), its stderr in a log file."""

    def start(*args: str, sub: str | None = None, pub: str | None = None) -> Daemon:
        sub, pub = sub or f"ipc://{tmp_path}/in", pub or f"ipc://{tmp_path}/out"
        d = Daemon(None, sub, pub, tmp_path / f"daemon{len(procs)}.log")
        cmd = [*CLI, "run", "--sub", "@" + sub, "--pub", "@" + pub, "--stats-every", "0.2", *SMALL, *args]
        with open(d.log, "w") as log:
            d.proc = subprocess.Popen(cmd, stderr=log)
        procs.append(d.proc)
        return d

    return start


@pytest.fixture
def keys(tmp_path) -> dict[str, Path]:
    """The server's pair, a clients dir listing `a` and `b`, and `x`: valid but not listed
    (secrets of the clients under tmp_path/issued)."""
    found = {"clients": tmp_path / "clients"}
    found["clients"].mkdir()
    found["server"], found["server_secret"] = create_keypair(tmp_path / "server", "server")
    for name in ("a", "b", "x"):
        public, found[name] = create_keypair(tmp_path / "issued", name)
        if name != "x":
            os.link(public, found["clients"] / public.name)
    return found
