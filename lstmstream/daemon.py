"""The daemon: points in on a SUB socket, one online LSTM per stream key, forecasts out on PUB.

The loop polls with a finite timeout, drains what is queued (bounded), checks every point
against its stream, learns the drain in rounds (round r holds the r-th point of every stream
that has one, so a stream's points stay in order and all streams of one dimension share one
batched `Fleet.learn`), publishes one forecast per learned point, and every `stats_every`
seconds publishes `$stats`. Publishing never blocks. Bad input is rejected, counted by reason,
logged (rate-limited), and never reaches a model. SIGTERM/SIGINT only set a flag: the current
drain is finished, then the sockets close. With a state dir, every stream is loaded before the
sockets open and checkpointed periodically and at the stop; systemd hears READY=1, STATUS=,
WATCHDOG=1 and STOPPING=1 (`service.Upkeep`). SIGHUP only sets a flag: the loop calls `reload`.
With `--shard i/N`, a message whose key belongs to another shard is dropped before it is decoded
and counted as `other_shard`. With `--forget-after S`, each stats tick drops the streams that have
learned no point for S seconds of the daemon's monotonic clock (streams loaded from the state
dir count as seen at the start); a key that comes back later is a new stream.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import click
import numpy as np
import zmq

from . import logs, notify, records, secure, wire
from .config import Config, ConfigError, endpoint, given, load
from .curve import CurveServer
from .learner import Fleet, Settings
from .logs import Throttle
from .service import Upkeep
from .shard import parse as parse_shard
from .wire import Point, Reason, Rejected

log = logging.getLogger("lstmstream.daemon")

POLL_MS = 100  # the longest the loop waits before it checks the stop flag and the clock
DRAIN_POINTS = 20_000  # points taken per drain before they are learned
DRAIN_MESSAGES = 20_000
PUB_HWM = 100_000
# libzmq discards what is still unread in the kernel when a sender disconnects while the SUB
# queue is full, so the queue must hold what a sender may have in flight when it leaves.
SUB_HWM = 100_000
LINGER_MS = 2_000  # how long close() may spend delivering the last forecasts
# Plain ints: pyzmq's flag enums cost more than the socket call they configure (per point).
NOBLOCK, MORE = int(zmq.NOBLOCK), int(zmq.SNDMORE | zmq.NOBLOCK)


@dataclass
class Stats:
    received: int = 0  # messages
    learned: int = 0  # points
    published: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    other_shard: int = 0  # messages whose key belongs to another shard (ignored, not an error)
    forgotten: int = 0  # streams dropped after --forget-after seconds without a point
    busy: float = 0.0  # seconds spent learning since the last report
    busy_points: int = 0

    def report(self, streams: int, uptime: float) -> dict:
        us = 1e6 * self.busy / self.busy_points if self.busy_points else None
        self.busy, self.busy_points = 0.0, 0
        return {
            "received": self.received,
            "learned": self.learned,
            "published": self.published,
            "rejected": dict(self.rejected),
            "other_shard": self.other_shard,
            "forgotten": self.forgotten,
            "streams": streams,
            "us_per_point": us,
            "uptime": uptime,
        }


@dataclass
class Drain:
    """Points taken from the socket in one go, grouped by stream key in arrival order."""

    points: dict[str, list[Point]] = field(default_factory=dict)
    new: int = 0  # keys not yet known to the daemon
    size: int = 0


class Daemon:
    def __init__(self, config: Config, reread: Callable[[], Config] | None = None):
        """`reread`: the configuration as it is now (for SIGHUP), e.g. the TOML file read again."""
        self.config = config
        self.reread = reread or (lambda: self.config)
        self.upkeep = Upkeep(config)
        self.ctx = zmq.Context()
        self.sub: zmq.Socket | None = None
        self.pub: zmq.Socket | None = None
        self.curve: CurveServer | None = None  # with --curve-secret: the ZAP allow-list of both sockets
        self.fleets: dict[int, Fleet] = {}  # one per point dimension
        self.home: dict[str, Fleet] = {}  # the fleet that holds each stream
        self.seen: dict[int, np.ndarray] = {}  # per fleet, by row: time.monotonic() of the last point
        self.stats = Stats()
        self.shard = parse_shard(config.shard)
        self.throttle = Throttle(log)
        self.pack = wire.packer()
        self.stopping = False
        self.reload_asked = False
        self.started = time.monotonic()

    # ---- life cycle ----------------------------------------------------------------------

    def run(self, signals: bool = True) -> int:
        """Serve until stopped; returns the exit status."""
        if signals:
            self.install_signals()
        try:
            self.restore()
            self.open()
            self.upkeep.ready(len(self.home))
            self.serve()
            return self.upkeep.stop(self.fleets)
        finally:
            self.close()

    def install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.stop)
        signal.signal(signal.SIGHUP, self.ask_reload)

    def stop(self, *_: object) -> None:
        self.stopping = True

    def ask_reload(self, *_: object) -> None:
        self.reload_asked = True

    def reload(self) -> None:
        """SIGHUP: reread the configuration; the log level and forget_after take effect, other
        changes need a restart."""
        notify.reloading()
        if self.curve is not None:
            secure.reload_keys(self.curve)
        try:
            new = self.reread()
        except ConfigError as e:
            log.error("reload: %s; keeping log level %s", e, self.config.log_level)
        else:
            logs.setup(new.log_level)
            live = {"log_level": new.log_level, "forget_after": new.forget_after}
            self.config = dataclasses.replace(self.config, **live)
            log.info("reloaded: log level %s, forget_after %g s", new.log_level, new.forget_after)
        self.upkeep.ready(len(self.home))

    def restore(self) -> None:
        """The streams saved in the state dir, if any."""
        self.fleets = self.upkeep.load()
        self.home = {key: fleet for fleet in self.fleets.values() for key in fleet.keys}
        self.seen = {size: np.full(fleet.capacity, time.monotonic()) for size, fleet in self.fleets.items()}

    def open(self) -> None:
        c = self.config
        self.curve = secure.server(self.ctx, c)
        if self.curve is None:
            secure.warn_exposed(c)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.MAXMSGSIZE, c.max_msg_size)
        self.sub.setsockopt(zmq.RCVHWM, SUB_HWM)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        for spec in c.sub:
            self._attach(self.sub, spec, "connect")
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, PUB_HWM)
        self.pub.setsockopt(zmq.MAXMSGSIZE, c.max_msg_size)  # subscriptions are incoming messages too
        self._attach(self.pub, c.pub, "bind")
        forget = f"; streams idle for {c.forget_after:g} s are forgotten" if c.forget_after else ""
        log.info("model %s; at most %d streams%s; shard %s", c.settings, c.max_streams, forget, self.shard)

    def _attach(self, sock: zmq.Socket, spec: str, natural: str) -> None:
        how, addr = endpoint(spec, natural)
        name = "SUB" if sock.type == zmq.SUB else "PUB"
        try:
            if self.curve is not None:
                secure.bind(self.curve, sock, how, addr)
            else:
                getattr(sock, how)(addr)
        except zmq.ZMQError as e:
            raise ConfigError(f"{name} cannot {how} {addr}: {e}") from None
        if how == "bind":
            addr = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("%s %s %s", name, how, addr)

    def close(self) -> None:
        log.info("stopping: %d streams, %d points learned", len(self.home), self.stats.learned)
        self.throttle.flush(force=True)
        for sock, linger in ((self.sub, 0), (self.pub, LINGER_MS)):
            if sock is not None:
                sock.close(linger=linger)
        if self.curve is not None:
            self.curve.stop()
        self.ctx.term()
        self.upkeep.close()

    def serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        next_tick = time.monotonic()
        while not self.stopping:
            wait = 0 if self.upkeep.copying else min(POLL_MS, max(0, 1000 * (next_tick - time.monotonic())))
            if poller.poll(wait):
                self.learn(self.drain())
            if self.reload_asked:
                self.reload_asked = False
                self.reload()
            self.upkeep.beat(self.fleets)
            if time.monotonic() >= next_tick:
                self.tick()
                next_tick = time.monotonic() + self.config.stats_every

    def tick(self) -> None:
        """Periodic work: forget idle streams, publish $stats, summarise held-back warnings."""
        if self.config.forget_after:
            self.forget(time.monotonic() - self.config.forget_after)
        report = self.stats.report(len(self.home), time.monotonic() - self.started)
        if self.curve is not None:
            report["curve"] = secure.counters(self.curve)
        self.send(wire.STATS_KEY, report)
        self.upkeep.status(len(self.home), self.stats.learned)
        self.throttle.flush()

    def forget(self, before: float) -> None:
        """Drop every stream whose last point was learned before `before` (time.monotonic()).

        Safe while a checkpoint is being copied in steps: `Checkpointer.step` finds each bucket's
        rows from `fleet.keys` anew and copies a bucket whole, between loop iterations. A bucket
        copied before this call still holds the stream (as it was); the next save drops it, and
        an emptied fleet stays in `self.fleets` so that its buckets are rewritten empty.
        """
        gone = []
        for fleet in self.fleets.values():
            seen = self.last_seen(fleet)
            for key in [fleet.keys[r] for r in np.flatnonzero(seen[: len(fleet.keys)] < before)]:
                row, last = fleet.index[key], len(fleet.keys) - 1
                fleet.remove(key)  # the last row moves into `row`
                seen[row] = seen[last]
                del self.home[key]
                gone.append(key)
        if not gone:
            return
        self.stats.forgotten += len(gone)
        self.upkeep.changed()
        some = ", ".join(f"{k!r:.40}" for k in gone[:3]) + (", ..." if len(gone) > 3 else "")
        log.info(
            "forgot %d streams without a point for %g s (%s); %d remain",
            len(gone), self.config.forget_after, some, len(self.home),
        )  # fmt: skip

    # ---- input ---------------------------------------------------------------------------

    def drain(self) -> Drain:
        """What is queued, bounded in messages (a flood of bad ones) and in good points."""
        d = Drain()
        recv = self.sub.recv
        for _ in range(DRAIN_MESSAGES):
            try:
                frame = recv(NOBLOCK, copy=False)  # a Frame knows `more`: no getsockopt per frame
            except zmq.Again:
                break
            frames = [frame.bytes]
            while frame.more:  # the rest of a message is there as soon as its first frame is
                frame = recv(NOBLOCK, copy=False)
                frames.append(frame.bytes)
            self.accept(frames, d)
            if d.size >= DRAIN_POINTS:
                break
        return d

    def accept(self, frames: list[bytes], d: Drain) -> None:
        self.stats.received += 1
        if len(frames) == 2 and not self.shard.owns(frames[0]):  # before any decoding: one dict lookup
            self.stats.other_shard += 1
            return
        try:
            key, points = wire.decode(frames)
        except Rejected as r:
            self.reject(r, frames[0])  # drain() passes at least one frame
            return
        queued = d.points.get(key)
        for p in points:
            try:
                if isinstance(p, Rejected):
                    raise p
                self.check(key, p, queued, d)
            except Rejected as r:
                self.reject(r, key)
                continue
            if queued is None:
                queued = d.points[key] = []
                d.new += key not in self.home
            queued.append(p)
            d.size += 1

    def check(self, key: str, p: Point, queued: list[Point] | None, d: Drain) -> None:
        """The rules that need the stream's history: t increases, v keeps its length, room."""
        if queued:
            last_t, size = queued[-1].t, len(queued[-1].v)
        elif (fleet := self.home.get(key)) is not None:
            last_t, size = float(fleet.last_t[fleet.index[key]]), fleet.size
        elif len(self.home) + d.new >= self.config.max_streams:
            raise Rejected(Reason.STREAMS, f"new stream past --max-streams {self.config.max_streams}")
        else:
            return
        if not p.t > last_t:
            raise Rejected(Reason.LATE, f"t={p.t!r} is not after {last_t!r}")
        if len(p.v) != size:
            raise Rejected(Reason.SIZE, f"{len(p.v)} values, the stream has {size}")

    def reject(self, r: Rejected, key: str | bytes) -> None:
        self.stats.rejected[r.reason] += 1
        self.throttle.warn(r.reason, f"{key!r:.80}: {r.detail}")

    # ---- learning and output -------------------------------------------------------------

    def learn(self, d: Drain) -> None:
        start, now = time.perf_counter(), time.monotonic()
        queues = list(d.points.items())
        r = 0
        while queues:
            by_size: dict[int, list[tuple[str, Point]]] = defaultdict(list)
            for key, points in queues:
                by_size[len(points[r].v)].append((key, points[r]))
            for size, items in by_size.items():
                self.learn_round(size, items, now)
            r += 1
            queues = [(k, points) for k, points in queues if len(points) > r]
        self.stats.busy += time.perf_counter() - start
        self.stats.busy_points += d.size

    def learn_round(self, size: int, items: list[tuple[str, Point]], now: float) -> None:
        """One point for each of several distinct streams of one dimension, in one batch, at `now`."""
        fleet = self.fleets.get(size)
        if fleet is None:
            fleet = self.fleets[size] = self.upkeep.new_fleet(size)
        keys = [k for k, _ in items]
        for k in keys:
            if k not in fleet.index:
                fleet.add(k)
                self.home[k] = fleet
        rows = np.fromiter(map(fleet.index.__getitem__, keys), np.int64, len(keys))
        self.last_seen(fleet)[rows] = now
        ts = np.fromiter((p.t for _, p in items), np.float64, len(items))
        if size == 1:
            ys = np.fromiter((p.v[0] for _, p in items), np.float64, len(items))
        else:
            ys = np.array([p.v for _, p in items], np.float64)
        # In row order, runs of consecutive rows are trained on views of the fleet's arrays
        # instead of gathered copies; a stream's result does not depend on its batch.
        order = np.argsort(rows, kind="stable")
        step = fleet.learn(rows[order], ys[order].reshape(len(keys), size), ts[order])
        self.stats.learned += len(keys)
        for j, record in zip(order.tolist(), records.forecasts(step), strict=True):
            self.send(keys[j], record)
        self.stats.published += len(keys)

    def last_seen(self, fleet: Fleet) -> np.ndarray:
        """The fleet's row-indexed times of the last point, grown with the fleet."""
        seen = self.seen.get(fleet.size)
        if seen is None or len(seen) < fleet.capacity:
            grown = np.zeros(fleet.capacity)  # rows beyond the fleet's streams are never read
            if seen is not None:
                grown[: len(seen)] = seen
            seen = self.seen[fleet.size] = grown
        return seen

    def send(self, key: str, record: dict) -> None:
        # A PUB socket never blocks: a subscriber whose queue (PUB_HWM) is full misses messages.
        self.pub.send(key.encode(), MORE)
        self.pub.send(self.pack(record), NOBLOCK)


def serve(ctx: click.Context, config_file: str | None, settings: Settings, options: dict) -> int:
    """`lstmstream run`: merge the configuration layers, set up logging, run the daemon."""
    cli = given(ctx, {**options, **settings.to_dict()})
    try:
        config = load(cli, path=config_file)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    logs.setup(config.log_level)
    try:
        return Daemon(config, reread=lambda: load(cli, path=config_file)).run()
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
