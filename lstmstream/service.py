"""What the daemon owes its state dir and systemd: load and checkpoints, warm start, sd_notify.

The daemon calls `Upkeep` around its loop: `load()` the state dir (EXTEND_TIMEOUT_USEC and
WATCHDOG=1 meanwhile), `ready()` once its sockets are bound too (READY=1), `beat()` every
iteration between two learns (a checkpoint when due, copied in steps; WATCHDOG=1 when due),
`status()` at each stats interval (STATUS= streams and points/s), `stop()` on SIGTERM/SIGINT
(STOPPING=1, then the final checkpoint), `close()`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping

import numpy as np

from . import notify
from .checkpoint import Checkpointer, StateLocked, StateMismatch
from .config import Config, ConfigError
from .learner import Fleet, Settings, load_init

log = logging.getLogger("lstmstream.service")

LOAD_EXTEND = 30.0  # seconds asked of systemd's start timeout after each shard loaded


def warm_start(path: str, settings: Settings) -> dict[str, np.ndarray]:
    """The weights of a `fit` file, checked against the settings for the size they were fit on."""
    try:
        init = load_init(path)
    except ValueError as e:
        raise ConfigError(f"--init {e}") from None
    try:
        Fleet(settings, int(np.size(init["b_out"])) or 1, init=init)
    except ValueError as e:
        raise ConfigError(f"--init {path}: {e}") from None
    return init


def learned(fleets: Mapping[int, Fleet]) -> int:
    """Points learned by all streams together: while it stays the same there is nothing to save."""
    return sum(int(f.scaler.n.sum()) for f in fleets.values())


class Upkeep:
    """The daemon's state dir (a `Checkpointer`, when configured), warm start and systemd duties."""

    def __init__(self, config: Config):
        self.config = config
        self.init = warm_start(config.init, config.settings) if config.init else None
        self.ck: Checkpointer | None = None
        self.dog = notify.Watchdog()
        self.next_save = math.inf
        self.saving = False  # a periodic save was started and has not been logged yet
        self.saved = (0, 0)  # (points learned, failed writes) when the last save began
        self.since = (0, time.monotonic())  # (points learned, when) at the last STATUS=

    def new_fleet(self, size: int) -> Fleet:
        """An empty fleet for streams of `size` values, warm-started when the weights fit that size."""
        if self.init is not None:
            try:
                return Fleet(self.config.settings, size, init=self.init)
            except ValueError as e:
                log.warning("%s; %d-value streams start from seeded weights", e, size)
        return Fleet(self.config.settings, size)

    def load(self) -> dict[int, Fleet]:
        """The fleets saved in the state dir ({} without one); ConfigError if it cannot be used."""
        if self.config.state_dir is None:
            return {}
        try:
            self.ck = Checkpointer(self.config.state_dir, self.config.settings)
            fleets = self.ck.load(self.loading, self.new_fleet)
        except (StateMismatch, StateLocked, OSError) as e:
            raise ConfigError(str(e)) from None
        streams = sum(len(f.keys) for f in fleets.values())
        log.info("state dir %s: %d streams loaded", self.config.state_dir, streams)
        self.next_save = time.monotonic() + self.config.checkpoint_every
        self.saved = (learned(fleets), 0)
        return fleets

    def loading(self, done: int, total: int) -> None:
        notify.extend_timeout(LOAD_EXTEND)
        if self.dog.due():
            notify.watchdog()

    def ready(self, streams: int) -> None:
        notify.ready(f"{streams} streams, serving")

    @property
    def copying(self) -> bool:
        """A checkpoint is being copied: the loop should come back without waiting."""
        return self.ck is not None and self.ck.copying

    def beat(self, fleets: Mapping[int, Fleet]) -> None:
        """Once per loop iteration, between two `learn` calls."""
        if self.ck is not None:
            if time.monotonic() >= self.next_save and not self.ck.busy:
                self.next_save = time.monotonic() + self.config.checkpoint_every
                self.saving = self.news(fleets) and self.ck.start(fleets)
            else:
                self.ck.step(fleets)
            if self.saving and not self.ck.busy:
                self.saving = False
                s = self.ck.stats
                log.debug(
                    "checkpoint: %d streams, %.0f MB in %d files, loop held <= %.0f ms, written in %.2f s",
                    s.streams, s.bytes / 1e6, s.files, 1e3 * s.pause, s.write,
                )  # fmt: skip
        if self.dog.due():
            notify.watchdog()

    def news(self, fleets: Mapping[int, Fleet]) -> bool:
        """Something to save: points learned since the last save began, or that save failed.

        An idle service does not rewrite its whole state every checkpoint interval."""
        now = (learned(fleets), self.ck.stats.failures)
        new, self.saved = now != self.saved, now
        return new

    def changed(self) -> None:
        """Streams were dropped: save next time even if the count of learned points is the same."""
        self.saved = (-1, self.saved[1])

    def status(self, streams: int, points: int) -> None:
        """STATUS= the number of streams and the points learned per second since the last one."""
        n0, t0 = self.since
        self.since = (points, time.monotonic())
        rate = (points - n0) / max(self.since[1] - t0, 1e-9)
        notify.status(f"{streams} streams, {rate:.0f} points/s")

    def stop(self, fleets: Mapping[int, Fleet]) -> int:
        """STOPPING=1 and the final checkpoint; the exit status (1 if the checkpoint failed)."""
        notify.stopping()
        if self.ck is None:
            return 0
        if not (self.ck.busy or self.news(fleets)):
            log.info("no checkpoint needed: nothing learned since the last one")
            return 0
        if not self.ck.save(fleets):
            log.error("the final checkpoint failed; streams not written resume from the previous one")
            return 1
        s = self.ck.stats
        log.info("checkpoint: %d streams, %.0f MB written to %s in %.2f s",
                 s.streams, s.bytes / 1e6, self.config.state_dir, s.write)  # fmt: skip
        return 0

    def close(self) -> None:
        if self.ck is not None:
            self.ck.close()
            self.ck = None
