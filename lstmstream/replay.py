"""`lstmstream replay`: CSV files in, points out over ZeroMQ, losslessly.

The points go out on an XPUB socket with XPUB_NODROP: the first point waits until a subscriber
(the daemon) has subscribed, and when the daemon falls behind the socket refuses the send
instead of dropping it, so replay waits. Pacing: a fixed rate, the recorded timestamps sped up,
or (default) as fast as the daemon takes them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import click
import zmq

from . import csvio, wire
from .config import endpoint
from .secure import ClientKeys

SNDHWM = 10_000


class Stalled(RuntimeError):
    pass


def load(files: Sequence[str], key: str | None = None) -> list[csvio.Point]:
    """The files' points interleaved by timestamp (bad rows are reported and skipped)."""
    return list(csvio.merge_by_time(csvio.read_points(f, key) for f in files))


def pacing(points: Sequence[csvio.Point], rate: float | None, speed: float | None) -> list[float] | None:
    """Seconds after the start at which each point is due, or None for as fast as possible."""
    if rate:
        return [i / rate for i in range(len(points))]
    if speed and points:
        return [(p.t - points[0].t) / speed for p in points]
    return None


class Publisher:
    """An XPUB socket that waits for a subscriber and never drops."""

    def __init__(
        self, spec: str, timeout: float, ctx: zmq.Context | None = None, curve: ClientKeys | None = None
    ):
        self.timeout = timeout
        self.own = ctx is None  # then close() waits for the last points to leave
        self.ctx = ctx or zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.XPUB_NODROP, 1)
        self.sock.setsockopt(zmq.SNDHWM, SNDHWM)
        if curve is not None:
            curve.apply(self.sock)
        how, addr = endpoint(spec, "connect")
        getattr(self.sock, how)(addr)
        self.addr = addr

    def wait_for_subscriber(self) -> None:
        if not self.sock.poll(int(1000 * self.timeout), zmq.POLLIN):
            raise Stalled(f"no subscriber on {self.addr} after {self.timeout:g}s (is the daemon running?)")
        self.sock.recv()  # the subscription message; the first one is all we wait for

    def send(self, frames: list[bytes]) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.sock.send_multipart(frames, zmq.NOBLOCK)
                return
            except zmq.Again:
                if time.monotonic() > deadline:
                    raise Stalled(f"{self.addr} took nothing for {self.timeout:g}s") from None
                self.sock.poll(100, zmq.POLLOUT)

    def close(self) -> None:
        self.sock.close(linger=int(1000 * self.timeout))
        if self.own:
            self.ctx.term()


def replay(
    points: Sequence[csvio.Point],
    spec: str,
    rate: float | None = None,
    speed: float | None = None,
    timeout: float = 30.0,
    progress: bool = False,
    ctx: zmq.Context | None = None,
    curve: ClientKeys | None = None,
) -> int:
    """Send every point as a [key, {t, v}] message; returns how many were sent."""
    pub = Publisher(spec, timeout, ctx, curve)
    try:
        pub.wait_for_subscriber()
        due = pacing(points, rate, speed)
        start = time.monotonic()
        with click.progressbar(
            enumerate(points), length=len(points), label="replay", file=sys.stderr, hidden=not progress
        ) as bar:
            for i, p in bar:
                if due is not None:
                    time.sleep(max(0.0, start + due[i] - time.monotonic()))
                pub.send(wire.encode_point(p.key, p.t, p.v))
    finally:
        pub.close()
    return len(points)
