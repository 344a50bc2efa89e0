import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

from lstmstream import checkpoint
from lstmstream.checkpoint import Checkpointer, StateLocked, StateMismatch
from lstmstream.learner import Fleet, Settings

SMALL = Settings(hidden=4, window=3, lr=0.01, seed=3)
KEYS = [f"sensor-{i}" for i in range(12)] + ["ünïcode key", "a/b\\c", ""]


def feed(fleets, rng, steps, t0=0, clock=(0.0, 1.0)):
    """Drive every fleet's streams, in key order, through `steps` batched points; returns the Steps.

    Point t is at time clock[0] + clock[1] * t.
    """
    out = []
    for t in range(t0, t0 + steps):
        for size, f in sorted(fleets.items()):
            rows = np.array([f.index[k] for k in sorted(f.keys)])
            ys = np.cumsum(rng.normal(size=(len(rows), size)), axis=1) + np.sin(t / 3.0)
            out.append(f.learn(rows, ys, np.full(len(rows), clock[0] + clock[1] * t)))
    return out


def make_fleets(settings=SMALL):
    fleets = {1: Fleet(settings, 1), 2: Fleet(settings, 2)}
    for k in KEYS:
        fleets[1].add(k)
    for k in KEYS[:5]:
        fleets[2].add("v-" + k)
    return fleets


def assert_same_state(a, b):
    assert sorted(a) == sorted(b)
    for size in a:
        fa, fb = a[size], b[size]
        assert sorted(fa.keys) == sorted(fb.keys)
        ra = np.array([fa.index[k] for k in fa.keys])
        rb = np.array([fb.index[k] for k in fa.keys])
        ea, eb = fa.export(ra), fb.export(rb)
        for n in ea:
            np.testing.assert_array_equal(ea[n], eb[n], err_msg=n)


@pytest.mark.parametrize("clock", [(0.0, 1.0), (1.7e9, 300.0)], ids=["counter", "epoch-5min"])
def test_exact_resume_gives_identical_forecasts_and_n_continues(tmp_path, clock):
    """Save mid-stream, load into fresh fleets, continue both on the same points: same forecasts.

    With epoch timestamps the calendar and season inputs switch on (after 8 intervals) across
    the save, so their state is covered too.
    """
    fleets = make_fleets()
    feed(fleets, np.random.default_rng(0), 7, clock=clock)
    with Checkpointer(tmp_path, SMALL, buckets=4) as ck:
        assert ck.save(fleets)

    with Checkpointer(tmp_path, SMALL) as ck:
        resumed = ck.load()
    assert_same_state(fleets, resumed)
    going = feed(fleets, np.random.default_rng(1), 8, t0=7, clock=clock)
    after = feed(resumed, np.random.default_rng(1), 8, t0=7, clock=clock)
    for s1, s2 in zip(going, after, strict=True):
        for name in ("v", "lo", "hi", "err", "score", "t"):
            np.testing.assert_allclose(getattr(s2, name), getattr(s1, name), rtol=0, atol=1e-9, err_msg=name)
        np.testing.assert_array_equal(s2.n, s1.n)
    assert (after[-1].n == 15).all()
    rows = [f.index["sensor-3"] for f in (resumed[1], fleets[1])]
    np.testing.assert_allclose(resumed[1].forecast(rows[:1], 4), fleets[1].forecast(rows[1:], 4), atol=1e-9)


def states(fleets):
    """{(size, key): that stream's exported state}."""
    return {(s, k): f.export(np.array([f.index[k]])) for s, f in fleets.items() for k in f.keys}


def test_a_save_in_steps_holds_each_stream_as_it_was_when_its_bucket_was_copied(tmp_path):
    """The loop learns between steps; every saved stream is one consistent moment of itself."""
    fleets = make_fleets()
    rng = np.random.default_rng(2)
    feed(fleets, rng, 3)
    history = {3: states(fleets)}
    with Checkpointer(tmp_path, SMALL, buckets=4) as ck:
        assert ck.start(fleets, budget=0)  # one bucket per call
        assert ck.copying and not ck.start(fleets)
        n = 3
        while ck.copying:
            feed(fleets, rng, 1)
            n += 1
            history[n] = states(fleets)
            ck.step(fleets, budget=0)
        assert n == 3 + 7  # 8 buckets (4 per point size), one copied by start
        assert ck.wait(timeout=30)
        assert ck.stats.streams == len(KEYS) + 5 and ck.stats.files == 8 and ck.stats.bytes > 0
    with Checkpointer(tmp_path, SMALL) as ck:
        loaded = ck.load()
    seen = set()
    for (size, key), saved in states(loaded).items():
        m = int(saved["scaler.n"][0])
        seen.add(m)
        for name, a in saved.items():
            np.testing.assert_array_equal(a, history[m][size, key][name], err_msg=f"{key} {name}")
    assert len(seen) > 1  # buckets were copied at different moments
    assert len(states(loaded)) == len(history[3])


def test_streams_that_come_go_and_move_rows_during_a_save_are_all_saved(tmp_path):
    """Fleet.remove moves the last stream into the freed row; no stream present throughout is lost."""
    fleets = {1: make_fleets()[1]}
    feed(fleets, np.random.default_rng(6), 2)
    throughout = set(KEYS[2:])
    with Checkpointer(tmp_path, SMALL, buckets=4) as ck:
        ck.start(fleets, budget=0)
        fleets[1].remove(KEYS[0])
        ck.step(fleets, budget=0)
        fleets[1].remove(KEYS[1])
        fleets[1].add("newcomer")
        while ck.copying:
            ck.step(fleets, budget=0)
        ck.wait(timeout=30)
    with Checkpointer(tmp_path, SMALL) as ck:
        loaded = ck.load()[1]
    assert throughout <= set(loaded.keys) <= set(KEYS) | {"newcomer"}
    for k in throughout:
        np.testing.assert_array_equal(loaded.w[loaded.index[k]], fleets[1].w[fleets[1].index[k]])


def test_wait_refuses_while_buckets_are_left_to_copy(tmp_path):
    with Checkpointer(tmp_path, SMALL, buckets=4) as ck:
        ck.start(make_fleets(), budget=0)
        with pytest.raises(RuntimeError, match="step"):
            ck.wait()


def test_save_during_a_save_cuts_it_short_and_saves_everything(tmp_path):
    """Two writers on one temp name would clash; `save` ends the running one first."""
    fleets = make_fleets()
    with Checkpointer(tmp_path, SMALL, buckets=4) as ck:
        assert ck.start(fleets, budget=0)
        feed(fleets, np.random.default_rng(3), 1)
        assert ck.save(fleets)
        assert not ck.busy and ck.stats.failures == 0 and ck.generation == 2
    with Checkpointer(tmp_path, SMALL) as ck:
        assert_same_state(ck.load(), fleets)


def test_corrupt_truncated_and_foreign_shards_are_skipped_and_logged(tmp_path, caplog):
    fleets = make_fleets()
    feed(fleets, np.random.default_rng(4), 4)
    with Checkpointer(tmp_path, SMALL, buckets=6) as ck:
        ck.save(fleets)
    shards = sorted(p for p in tmp_path.iterdir() if p.suffix == ".npz")
    lost = set()
    damage = [
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),  # truncated
        lambda p: p.write_bytes(os.urandom(500)),  # garbage
        lambda p: np.savez(p, w=np.zeros(3)),  # a foreign npz: no metadata
        lambda p: np.savez(p, meta=np.frombuffer(b'{"format": "other"}', np.uint8)),
        lambda p: np.savez(p, meta=np.array([{"pickled": 1}], dtype=object)),  # pickle is never loaded
        flip_a_byte,  # caught by the zip's CRC
    ]
    for p, hurt in zip(shards, damage, strict=False):
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes())
        lost |= {(meta["size"], k) for k in meta["keys"]}
        hurt(p)
    assert lost, "the damaged shards held streams"
    (tmp_path / "notes.txt").write_text("not ours")
    with caplog.at_level(logging.WARNING, "lstmstream.checkpoint"), Checkpointer(tmp_path, SMALL) as ck:
        loaded = ck.load()
    skipped = [r for r in caplog.records if "skipping checkpoint" in r.getMessage()]
    assert len(skipped) == 6
    kept = {(s, k) for s, f in loaded.items() for k in f.keys}
    everything = {(s, k) for s, f in fleets.items() for k in f.keys}
    assert kept == everything - lost
    for s, k in kept:  # the survivors are intact
        a, b = fleets[s], loaded[s]
        np.testing.assert_array_equal(b.w[b.index[k]], a.w[a.index[k]])
        assert b.scaler.n[b.index[k]] == 4


def flip_a_byte(p):
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x10
    p.write_bytes(bytes(data))


def test_a_shard_with_wrong_array_shapes_is_skipped(tmp_path, caplog):
    fleets = {1: make_fleets()[1]}
    with Checkpointer(tmp_path, SMALL, buckets=1) as ck:
        ck.save(fleets)
    p = tmp_path / "d1-b000.npz"
    with np.load(p, allow_pickle=False) as z:
        arrays = dict(z)
    arrays["w"] = arrays["w"][:, :-1]
    np.savez(p, **arrays)
    with caplog.at_level(logging.WARNING, "lstmstream.checkpoint"), Checkpointer(tmp_path, SMALL) as ck:
        assert ck.load() == {}
    assert "array w is float32" in caplog.text


@pytest.mark.parametrize(("setting", "value"), [("hidden", 5), ("window", 4), ("dtype", "float64")])
def test_a_state_dir_of_another_shape_is_refused_naming_the_setting(tmp_path, setting, value):
    with Checkpointer(tmp_path, SMALL, buckets=2) as ck:
        ck.save(make_fleets())
    other = Settings(**{**SMALL.to_dict(), setting: value})
    with pytest.raises(StateMismatch, match=rf"{setting}=.*{setting}="), Checkpointer(tmp_path, other) as ck:
        ck.load()


def test_other_settings_load_with_a_warning(tmp_path, caplog):
    fleets = make_fleets()
    with Checkpointer(tmp_path, SMALL, buckets=2) as ck:
        ck.save(fleets)
    faster = Settings(**{**SMALL.to_dict(), "lr": 0.1})
    with caplog.at_level(logging.WARNING, "lstmstream.checkpoint"), Checkpointer(tmp_path, faster) as ck:
        loaded = ck.load()
    assert loaded[1].settings.lr == 0.1
    assert "lr=0.01 (now 0.1)" in caplog.text
    assert len(caplog.records) == 1


def test_the_newest_generation_wins_and_stale_shards_are_removed(tmp_path):
    """A crash left shards of an older save under other names (another bucket count): newest wins."""
    fleets = {1: make_fleets()[1]}
    rng = np.random.default_rng(5)
    feed(fleets, rng, 2)
    with Checkpointer(tmp_path, SMALL, buckets=3) as ck:
        ck.save(fleets)
        older = {p.name: p.read_bytes() for p in tmp_path.glob("*.npz")}
        feed(fleets, rng, 1)
        ck.save(fleets)
    for name, data in older.items():  # sorts after the newer files
        (tmp_path / name.replace("-b", "-b9")).write_bytes(data)
    with Checkpointer(tmp_path, SMALL, buckets=5) as ck:
        loaded = ck.load()
        assert ck.generation == 2
        assert (loaded[1].scaler.n[: len(KEYS)] == 3).all()
        ck.save(loaded)
        assert ck.generation == 3
    shards = [f"d1-b{b:03d}.npz" for b in range(5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [*shards, "lock"]


def test_shards_of_a_point_size_not_in_this_save_are_kept(tmp_path):
    fleets = make_fleets()
    with Checkpointer(tmp_path, SMALL, buckets=2) as ck:
        ck.save(fleets)
        ck.save({1: fleets[1]})
    assert sorted(p.name for p in tmp_path.glob("d2-*")) == ["d2-b000.npz", "d2-b001.npz"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "d1-b000.npz"
    path.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"new but incomplete")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        checkpoint.write_atomic(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d1-b000.npz"]


def test_a_save_that_cannot_write_is_logged_and_counted_and_the_next_one_recovers(tmp_path, caplog):
    fleets = {1: make_fleets()[1]}
    feed(fleets, np.random.default_rng(7), 2)
    with Checkpointer(tmp_path, SMALL, buckets=2) as ck:
        assert ck.save(fleets)
        before = {p.name: p.read_bytes() for p in tmp_path.glob("d*.npz")}
        feed(fleets, np.random.default_rng(8), 1)
        blocker = tmp_path / ".tmp-d1-b000.npz"
        blocker.mkdir()  # the temp file cannot be created: a real OSError, even as root
        with caplog.at_level(logging.ERROR, "lstmstream.checkpoint"):
            assert ck.save(fleets) is False
        assert ck.stats.failures == 1 and "failed" in caplog.text
        assert {p.name: p.read_bytes() for p in tmp_path.glob("d*.npz")} == before
        blocker.rmdir()
        assert ck.save(fleets)
    with Checkpointer(tmp_path, SMALL) as ck:
        assert (ck.load()[1].scaler.n[: len(KEYS)] == 3).all()


def test_leftover_temp_files_are_removed_on_load(tmp_path):
    (tmp_path / ".tmp-d1-b000.npz").write_bytes(b"half a file")
    with Checkpointer(tmp_path, SMALL) as ck:
        assert ck.load() == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock"]


def test_progress_is_reported_per_shard(tmp_path):
    with Checkpointer(tmp_path, SMALL, buckets=3) as ck:
        ck.save(make_fleets())
    calls = []
    with Checkpointer(tmp_path, SMALL) as ck:
        ck.load(progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 6) for i in range(1, 7)]


def test_a_state_dir_is_locked_by_one_checkpointer(tmp_path):
    ck = Checkpointer(tmp_path, SMALL)
    with pytest.raises(StateLocked, match=str(tmp_path)):
        Checkpointer(tmp_path, SMALL)
    ck.close()
    Checkpointer(tmp_path, SMALL).close()


def test_no_pickle_anywhere_in_a_written_shard(tmp_path):
    with Checkpointer(tmp_path, SMALL, buckets=1) as ck:
        ck.save(make_fleets())
    with zipfile.ZipFile(tmp_path / "d1-b000.npz") as z:
        for name in z.namelist():
            header = z.read(name)[:200]
            assert b"'descr': '|O'" not in header and b"'descr': 'O'" not in header, name


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from lstmstream.checkpoint import Checkpointer
    from lstmstream.learner import Fleet, Settings

    settings = Settings(hidden=16, window=8, seed=3)
    fleet = Fleet(settings, 1)
    rows = np.array([fleet.add(f"s{i}") for i in range(200)])
    ck = Checkpointer(sys.argv[1], settings, buckets=16)
    t = 0
    while True:
        fleet.learn(rows, np.full((200, 1), float(t)), np.full(200, float(t)))
        t += 1
        print(t, flush=True)  # then save: the kill lands while files are being written
        ck.save({1: fleet})
    """
)


def test_sigkill_during_saves_never_leaves_a_damaged_shard(tmp_path, caplog):
    """A writer killed at an arbitrary moment: every stream loads, at most one save behind."""
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(5):  # a few complete saves, then kill while a shard is being written
            line = proc.stdout.readline()
        assert line, "the writer died"
        deadline = time.monotonic() + 30
        while not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline and proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    last = int(line)
    assert proc.returncode == -signal.SIGKILL
    settings = Settings(hidden=16, window=8, seed=3)
    with caplog.at_level(logging.WARNING, "lstmstream.checkpoint"), Checkpointer(tmp_path, settings) as ck:
        loaded = ck.load()
    assert not [r for r in caplog.records if "skipping" in r.getMessage()]
    n = loaded[1].scaler.n[: len(loaded[1].keys)]
    assert len(loaded[1].keys) == 200
    assert n.min() >= last - 1 and n.max() <= n.min() + 1  # the save of point `last` was under way
