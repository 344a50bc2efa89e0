"""`lstmstream record`: what a PUB socket sends, as CSV.

Forecasts become `key,t,v,lo,hi,err,score,n` rows (the format of `eval --forecasts`), points
become `key,t,v` rows (which `replay` reads back). The first message decides the file's format;
messages of the other kind and `$`-keys (stats) are skipped. `listen` is the subscribing loop
that `tail` shares.
"""

from __future__ import annotations

import csv
import logging
import signal
import time
from collections.abc import Iterator
from typing import TextIO

import zmq

from . import csvio, wire
from .config import endpoint
from .records import format_value
from .secure import ClientKeys
from .wire import Rejected

log = logging.getLogger("lstmstream.record")


def listen(
    spec: str,
    prefix: str,
    duration: float | None = None,
    ctx: zmq.Context | None = None,
    curve: ClientKeys | None = None,
) -> Iterator[tuple[str, object]]:
    """(key, decoded payload) of each message until `duration` s pass or SIGTERM/SIGINT."""
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    sock = (ctx or zmq.Context.instance()).socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    if curve is not None:
        curve.apply(sock)
    how, addr = endpoint(spec, "connect")
    getattr(sock, how)(addr)
    end = None if duration is None else time.monotonic() + duration
    try:
        while not stop and (end is None or time.monotonic() < end):
            if not sock.poll(100):
                continue
            frames = sock.recv_multipart()
            try:
                if len(frames) != 2:
                    raise Rejected(wire.Reason.FRAMES, f"{len(frames)} frames")
                yield frames[0].decode("utf-8", "replace"), wire.unpack(frames[1])
            except Rejected as r:
                log.warning("skipped a message: %s", r)
    finally:
        sock.close(linger=0)


def is_forecast(payload: object) -> bool:
    return isinstance(payload, dict) and "lo" in payload


class Recorder:
    def __init__(self, out: TextIO):
        self.out = out
        self.kind: str | None = None
        self.rows = 0
        self.skipped = 0
        self.writer: csv.writer | csvio.ForecastWriter | None = None

    def write(self, key: str, payload: object) -> None:
        kind = "forecasts" if is_forecast(payload) else "points"
        if key.startswith("$") or (self.kind is not None and kind != self.kind):
            self.skipped += not key.startswith("$")
            return
        if self.kind is None:
            self.start(kind)
        if kind == "forecasts":
            self.writer.write(key, payload)
            self.rows += 1
        else:
            self.write_points(key, payload)
        self.out.flush()

    def start(self, kind: str) -> None:
        self.kind = kind
        if kind == "forecasts":
            self.writer = csvio.ForecastWriter(self.out)
        else:
            self.writer = csv.writer(self.out, lineterminator="\n")
            self.writer.writerow(("key", "t", "v"))

    def write_points(self, key: str, payload: object) -> None:
        for item in payload if isinstance(payload, list) else [payload]:
            try:
                p = wire.decode_point(item)
            except Rejected as r:
                log.warning("%s: skipped a point: %s", key, r)
                continue
            v = p.v[0] if len(p.v) == 1 else list(p.v)
            self.writer.writerow((key, format_value(p.t), format_value(v)))
            self.rows += 1


def record(
    spec: str,
    prefix: str,
    out: TextIO,
    count: int | None = None,
    duration: float | None = None,
    curve: ClientKeys | None = None,
) -> Recorder:
    rec = Recorder(out)
    for key, payload in listen(spec, prefix, duration, curve=curve):
        rec.write(key, payload)
        if count is not None and rec.rows >= count:
            break
    if rec.kind is None:
        csvio.ForecastWriter(out)
    if rec.skipped:
        log.warning("skipped %d messages of another kind than the first (%s)", rec.skipped, rec.kind)
    return rec
