"""Checkpoints: every stream's complete state in a state directory, written atomically, no pickle.

Layout of a state dir: one `d{size}-b{bucket}.npz` shard per point size and key-hash bucket. Each
shard holds that bucket's per-stream arrays (`Fleet.arrays()` names, one row per stream) and a
`meta` entry, UTF-8 JSON: format and version, the fleet's settings and size, the stream keys in
row order and a save generation. A file is written to a temp name in the same directory, flushed,
fsynced and renamed over the old one; the directory is fsynced after the renames.

Sharding bounds the damage: a corrupt, truncated or foreign shard is logged and skipped, and only
its streams start fresh. A valid shard written with other shapes (hidden, window, dtype) is
refused with `StateMismatch` naming the setting.

Saving never stalls the daemon loop for long: `Checkpointer.start` begins a save and `step`,
called once per loop iteration, copies a few buckets (about 20 ms worth) between two `learn`
calls and queues them; a background thread writes the queued shards. Each stream is saved as
one consistent moment of itself; streams in different buckets may be a few iterations apart,
which is harmless since streams never interact. At shutdown `save` does it all at once.

    with Checkpointer(state_dir, settings) as ck:
        fleets = ck.load(progress)                     # {point size: Fleet}
        ...loop: if due: ck.start(fleets); ck.step(fleets); learn...
        ck.save(fleets)                                # on SIGTERM/SIGINT

    python -m lstmstream.checkpoint --streams 10000   # measures the pauses and the write
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

from .learner import Fleet, Settings

FORMAT = "lstmstream-checkpoint"
VERSION = 1
BUCKETS = 64
WRITE_CHUNK = 1 << 22  # bytes per write call
STEP_BUDGET = 0.02  # seconds of copying per loop iteration while a save is under way
SHARD = re.compile(r"d(\d+)-b(\d+)\.npz")
TEMP = ".tmp-"

log = logging.getLogger("lstmstream.checkpoint")


class StateMismatch(Exception):
    """The state dir was written by a model of another shape; resuming would mix models."""


class StateLocked(Exception):
    """Another process holds the state dir."""


@dataclass
class Shard:
    """One bucket of one fleet: keys in row order, their arrays, and the file's metadata."""

    name: str
    meta: dict
    arrays: dict[str, np.ndarray]

    def write(self, f) -> None:
        """The shard as an .npz (a zip of .npy files, stored), written from the arrays' memory.

        np.savez copies each array in 16 MiB pieces while holding the GIL, which would stall the
        daemon loop; writing memoryviews lets zlib and the file write run without it.
        """
        meta = np.frombuffer(json.dumps(self.meta).encode(), np.uint8)
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, a in {"meta": meta, **self.arrays}.items():
                a = np.ascontiguousarray(a)
                with z.open(f"{name}.npy", "w", force_zip64=True) as entry:
                    npformat.write_array_header_1_0(entry, npformat.header_data_from_array_1_0(a))
                    data = memoryview(a.reshape(-1).view(np.uint8))
                    for at in range(0, len(data), WRITE_CHUNK):
                        entry.write(data[at : at + WRITE_CHUNK])


@dataclass
class Stats:
    """What the last save did, for logs and the bench."""

    pause: float = 0.0  # the longest the loop was held by one `start`/`step` (copying buckets)
    copy: float = 0.0  # seconds of copying in all
    write: float = 0.0  # seconds from start to the last file written and synced
    streams: int = 0
    files: int = 0
    bytes: int = 0
    failures: int = 0  # saves that failed to write (disk full, permissions), counted over the run


def bucket_of(key: str, buckets: int) -> int:
    """A stable bucket for a key (never Python's salted hash)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % buckets


def shard_name(size: int, bucket: int) -> str:
    return f"d{size}-b{bucket:03d}.npz"


def shard_of(fleet: Fleet, size: int, bucket: int, rows: np.ndarray, generation: int) -> Shard:
    """A copy of the state of `rows` (one bucket of a fleet); the fleet may change right after."""
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "size": size,
        "settings": fleet.settings.to_dict(),
        "keys": [fleet.keys[r] for r in rows],
        "generation": generation,
    }
    arrays = {n: a[rows] for n, a in fleet.arrays().items()}  # fancy indexing copies
    return Shard(shard_name(size, bucket), meta, arrays)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable) -> int:
    """Write a file by `write(fileobj)` into a temp file beside it, fsync, rename; returns bytes."""
    tmp = path.with_name(f"{TEMP}{path.name}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def read_meta(path: Path) -> dict:
    """The metadata of a shard; raises on anything that is not one of ours."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("not an lstmstream checkpoint")
    if meta.get("version") != VERSION:
        raise ValueError(f"format version {meta.get('version')!r}, this build reads {VERSION}")
    if not isinstance(meta.get("keys"), list) or not all(isinstance(k, str) for k in meta["keys"]):
        raise ValueError("bad key list")
    if (
        not isinstance(meta.get("size"), int)
        or meta["size"] < 1
        or not isinstance(meta.get("settings"), dict)
    ):
        raise ValueError("bad size or settings")
    if not isinstance(meta.get("generation"), int):
        raise ValueError("bad generation")
    row_shapes(saved_settings(meta), meta["size"])  # raises on settings no fleet accepts
    return meta


def read_arrays(path: Path, template: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """A shard's arrays, checked name by name against a fleet's: dtype, row count, row shape."""
    out = {}
    with np.load(path, allow_pickle=False) as z:
        for name, t in template.items():
            a = z[name]
            if a.dtype != t.dtype or a.shape != (n, *t.shape[1:]):
                raise ValueError(f"array {name} is {a.dtype}{a.shape}, expected {t.dtype}{(n, *t.shape[1:])}")
            out[name] = a
    return out


@functools.lru_cache(maxsize=32)
def row_shapes(settings: Settings, size: int) -> tuple:
    """(name, dtype, shape of one row) of every per-stream array of a fleet with these settings."""
    return tuple((n, a.dtype.str, a.shape[1:]) for n, a in Fleet(settings, size).arrays().items())


def saved_settings(meta: dict) -> Settings:
    known = {f.name for f in dataclasses.fields(Settings)}
    return Settings(**{n: v for n, v in meta["settings"].items() if n in known})


def check_shapes(path: Path, meta: dict, settings: Settings) -> None:
    """Refuse a shard whose settings give the arrays other shapes, naming the settings that do."""
    saved, size = saved_settings(meta), meta["size"]
    mine = row_shapes(settings, size)
    if row_shapes(saved, size) == mine:
        return
    was, want = saved.to_dict(), settings.to_dict()
    differ = [n for n in want if was[n] != want[n]]
    culprits = [n for n in differ if row_shapes(dataclasses.replace(settings, **{n: was[n]}), size) != mine]
    then = ", ".join(f"{n}={was[n]!r}" for n in culprits or differ)
    now = ", ".join(f"{n}={want[n]!r}" for n in culprits or differ)
    raise StateMismatch(
        f"{path} was written with {then} but the configuration says {now}; "
        "use another state dir, or set it back"
    )


def load(
    state_dir: Path,
    settings: Settings,
    progress: Callable[[int, int], None] | None = None,
    new_fleet: Callable[[int], Fleet] | None = None,
) -> tuple[dict[int, Fleet], int]:
    """Fleets (by point size) restored from a state dir, and the newest save generation found.

    Bad shards are logged and skipped; `progress(done, total)` is called after each shard (the
    daemon extends its start timeout there). `new_fleet(size)` makes an empty fleet (default:
    `Fleet(settings, size)`; pass one with a warm start). Raises StateMismatch for another shape.
    """
    new_fleet = new_fleet or (lambda size: Fleet(settings, size))
    metas: list[tuple[Path, dict]] = []
    for path in sorted(state_dir.iterdir()):
        if path.name.startswith(TEMP) and path.is_file():
            log.info("removing %s, left by an interrupted save", path)
            path.unlink(missing_ok=True)
        elif SHARD.fullmatch(path.name):
            try:
                metas.append((path, read_meta(path)))
            except Exception as e:  # any damage in one file only costs that file's streams
                log.warning("skipping checkpoint %s: %s; its streams start fresh", path, e)
    for path, meta in metas:
        check_shapes(path, meta, settings)
    want = settings.to_dict()
    changed = sorted({(n, repr(v)) for _, m in metas for n, v in m["settings"].items() if want.get(n) != v})
    if changed:
        was = ", ".join(f"{n}={v} (now {want.get(n)!r})" for n, v in changed)
        log.warning("%s was written with %s; continuing with the configured settings", state_dir, was)

    fleets: dict[int, Fleet] = {}
    metas.sort(key=lambda pm: pm[1]["generation"])  # newer shards overwrite older copies
    for done, (path, meta) in enumerate(metas, 1):
        fleet = fleets.get(meta["size"]) or new_fleet(meta["size"])
        try:
            arrays = read_arrays(path, fleet.arrays(), len(meta["keys"]))
        except Exception as e:
            log.warning("skipping checkpoint %s: %s; its streams start fresh", path, e)
        else:
            fleet.restore(meta["keys"], arrays)
            fleets[meta["size"]] = fleet
        if progress:
            progress(done, len(metas))
    generation = max((m["generation"] for _, m in metas), default=0)
    return fleets, generation


class Checkpointer:
    """Saves and loads one state dir: `load` once, `start` + `step` periodically, `save` at the end.

    Holds an exclusive lock on the dir for its lifetime, so two daemons never share one.
    """

    def __init__(self, state_dir: str | os.PathLike, settings: Settings, buckets: int = BUCKETS):
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.buckets = buckets
        self.generation = 0
        self.stats = Stats()
        self._thread: threading.Thread | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._todo: list[tuple[int, int]] = []
        self._bucket: dict[str, int] = {}  # bucket of each key seen during the current save
        self._ok = True
        self._lock = open(self.dir / "lock", "a")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StateLocked(f"state dir {self.dir} is in use by another process") from None

    def load(
        self,
        progress: Callable[[int, int], None] | None = None,
        new_fleet: Callable[[int], Fleet] | None = None,
    ) -> dict[int, Fleet]:
        """The saved fleets by point size ({} for a new dir); see `load`."""
        fleets, self.generation = load(self.dir, self.settings, progress, new_fleet)
        return fleets

    @property
    def copying(self) -> bool:
        """A save is under way and has buckets left to copy: keep calling `step`."""
        return bool(self._todo)

    @property
    def busy(self) -> bool:
        return self.copying or (self._thread is not None and self._thread.is_alive())

    def start(self, fleets: Mapping[int, Fleet], budget: float = STEP_BUDGET) -> bool:
        """Begin a save (copies the first buckets now); False, doing nothing, if one is under way."""
        if self.busy:
            return False
        self.generation += 1
        self._bucket = {}
        self._todo = [(size, b) for size in sorted(fleets) for b in reversed(range(self.buckets))]
        self._queue = queue.SimpleQueue()
        if not self._todo:
            self._queue.put(None)
        planned = {shard_name(size, b) for size, b in self._todo}
        self._thread = threading.Thread(
            target=self._writer, args=(self._queue, planned, time.perf_counter()), daemon=True
        )
        self.stats.pause = self.stats.copy = 0.0
        self.stats.streams = sum(len(f.keys) for f in fleets.values())
        self._thread.start()
        self.step(fleets, budget)
        return True

    def step(self, fleets: Mapping[int, Fleet], budget: float = STEP_BUDGET) -> None:
        """Copy buckets of a running save for about `budget` seconds (at least one bucket).

        Call it every loop iteration; it returns at once when no save is copying. Each bucket is
        copied whole between two `learn` calls, so every stream's saved state is consistent.
        """
        t0 = time.perf_counter()
        ids: dict[int, np.ndarray] = {}
        while self._todo:
            size, b = self._todo.pop()
            if size in fleets:
                fleet = fleets[size]
                if size not in ids:
                    ids[size] = self._bucket_ids(fleet)
                rows = np.flatnonzero(ids[size] == b)
                self._queue.put(shard_of(fleet, size, b, rows, self.generation))
            if not self._todo:
                self._queue.put(None)
            if time.perf_counter() - t0 >= budget:
                break
        held = time.perf_counter() - t0
        self.stats.pause = max(self.stats.pause, held)
        self.stats.copy += held

    def save(self, fleets: Mapping[int, Fleet]) -> bool:
        """A complete save, now (at shutdown); a save under way is cut short first. True if written."""
        self._cut()
        self.start(fleets, budget=float("inf"))
        self.wait()
        return self._ok

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the files of a fully copied save to be written; True once none is running."""
        if self.copying:
            raise RuntimeError("the save is still copying: call step() until copying is False")
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.busy

    def close(self) -> None:
        self._cut()
        self._lock.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cut(self) -> None:
        """End a save under way: stop copying, let the writer finish what it has, wait for it."""
        if self._todo:
            self._todo = []
            self._queue.put(None)
        self.wait()

    def _bucket_ids(self, fleet: Fleet) -> np.ndarray:
        """The bucket of each row of `fleet` now (streams come, go and move rows between steps)."""
        for k in fleet.keys:
            if k not in self._bucket:
                self._bucket[k] = bucket_of(k, self.buckets)
        return np.fromiter((self._bucket[k] for k in fleet.keys), np.int64, len(fleet.keys))

    def _writer(self, shards: queue.SimpleQueue, planned: set[str], t0: float) -> None:
        """The background half of a save: write each copied shard, then tidy up and sync the dir."""
        written, total, self._ok = set(), 0, True
        while (shard := shards.get()) is not None:
            if not self._ok:
                continue  # drain the queue so the copying side never waits
            try:
                total += write_atomic(self.dir / shard.name, shard.write)
                written.add(shard.name)
            except Exception as e:  # disk full, permissions, or a bug: logged, counted, never lost silently
                self._ok = False
                self.stats.failures += 1
                log.error("checkpoint to %s failed: %s (failure %d)", self.dir, e, self.stats.failures)
        try:
            if written == planned:  # complete: the fleets' shards of other bucket counts are stale
                sizes = {SHARD.fullmatch(n).group(1) for n in planned}
                for p in self.dir.iterdir():
                    m = SHARD.fullmatch(p.name)
                    if m and m.group(1) in sizes and p.name not in written:
                        p.unlink()
            fsync_dir(self.dir)
        except OSError as e:
            self._ok = False
            log.error("checkpoint to %s: syncing the directory failed: %s", self.dir, e)
        self.stats.write = time.perf_counter() - t0
        self.stats.files = len(written)
        self.stats.bytes = total


def _bench(streams: int, hidden: int, window: int, state_dir: str) -> None:
    """Three saves of `streams` streams while a loop learns batches of 100 of them."""
    settings = Settings(hidden=hidden, window=window)
    fleet = Fleet(settings, 1)
    rows = np.array([fleet.add(f"sensor-{i}") for i in range(streams)])
    rng = np.random.default_rng(0)
    fleet.learn(rows, rng.normal(size=(streams, 1)), np.zeros(streams))
    t = [1.0]

    def iteration() -> float:
        t0 = time.perf_counter()
        batch = rng.choice(rows, 100, replace=False)
        fleet.learn(batch, rng.normal(size=(100, 1)), np.full(100, t[0]))
        t[0] += 1
        ck.step({1: fleet})
        return time.perf_counter() - t0

    ck = Checkpointer(state_dir, settings)
    idle = [iteration() for _ in range(50)]
    print(
        f"{streams} streams H={hidden} k={window}; loop iteration (learn 100 points) without a save: "
        f"median {np.median(idle) * 1e3:.1f} ms, max {max(idle) * 1e3:.1f} ms"
    )
    for i in range(3):  # the first save also pays for fresh pages
        ck.start({1: fleet})
        busy = []
        while ck.busy:
            busy.append(iteration())
        s = ck.stats
        print(
            f"save {i + 1}: longest step {s.pause * 1e3:.0f} ms, {s.copy:.2f} s copying in all; "
            f"{len(busy)} iterations meanwhile, median {np.median(busy) * 1e3:.1f} ms, "
            f"max {max(busy) * 1e3:.0f} ms; {s.bytes / 1e6:.0f} MB in {s.files} files in {s.write:.2f} s"
        )
    ck.close()
    t0 = time.perf_counter()
    with Checkpointer(state_dir, settings) as ck:
        loaded = ck.load()
    print(f"load {time.perf_counter() - t0:.2f} s, {len(loaded[1].keys)} streams")


if __name__ == "__main__":
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description="Measure the checkpoint pause and write time.")
    ap.add_argument("--streams", type=int, default=10_000)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--dir", default=None, help="state dir (default: a temp dir, removed)")
    a = ap.parse_args()
    if a.dir:
        _bench(a.streams, a.hidden, a.window, a.dir)
    else:
        with tempfile.TemporaryDirectory() as d:
            _bench(a.streams, a.hidden, a.window, d)
