"""Plain helpers shared by the end-to-end tests: the real CLI as a subprocess, bounded waits on its
stderr and on ZeroMQ sockets, small CSV feeds. pytest puts tests/ on sys.path (no __init__.py, the
default import mode), so test modules and conftest.py import these as `from support import ...`."""

from __future__ import annotations

import csv
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack
import zmq

CLI = [sys.executable, "-c", "from lstmstream.cli import main; main(prog_name='lstmstream')"]
SMALL = ["--hidden", "8", "--window", "4"]
WAIT = 30.0  # seconds: the default bound on every wait


def run_cli(*args: str, timeout: float = 120, cwd=None) -> subprocess.CompletedProcess:
    """`lstmstream ARGS` to completion, text output captured."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


@dataclass
class Daemon:
    """A `lstmstream run` started by the `daemon` fixture, its stderr in `log`."""

    proc: subprocess.Popen
    sub: str  # where points go in (the daemon binds)
    pub: str  # where forecasts come out (the daemon binds)
    log: Path

    def text(self) -> str:
        return self.log.read_text()

    def wait_log(self, needle: str) -> None:
        deadline = time.monotonic() + WAIT
        while needle not in self.text():
            assert self.proc.poll() is None, f"the daemon exited: {self.text()}"
            assert time.monotonic() < deadline, f"{needle!r} never logged: {self.text()}"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(WAIT)


def wait_for_line(proc: subprocess.Popen, word: str, timeout: float = WAIT) -> str:
    """The first stderr line (text mode, piped) containing `word`, or "" if stderr closes first."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=deadline - time.monotonic()):
            line = proc.stderr.readline()
            if word in line or not line:
                return line
    raise AssertionError(f"no line with {word!r} in time")


def next_stats(sock: zmq.Socket, until=lambda st: True) -> dict:
    """The next $stats map satisfying `until` (forecasts arriving meanwhile are dropped)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if sock.poll(100):
            key, payload = sock.recv_multipart()
            st = msgpack.unpackb(payload)
            if key == b"$stats" and until(st):
                return st
    raise AssertionError("no matching $stats in time")


def pack(t, v) -> bytes:
    return msgpack.packb({"t": t, "v": v})


def write_csv(path: Path, rows: Iterable[Sequence], header: Sequence[str] = ("key", "t", "v")) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
