import numpy as np
from support import run_cli

from lstmstream.feed import sensor_feed


def test_feed_has_cycles_trends_and_one_spike():
    feed = sensor_feed(days=4, per_day=24, seed=1)
    keys = {p.key for p in feed.points}
    assert len(keys) == 5 and len(feed.points) == 5 * 4 * 24
    assert [p.t for p in feed.points] == sorted(p.t for p in feed.points)
    pump = np.array([p.v for p in feed.points if p.key == feed.spike_key])
    ts = [p.t for p in feed.points if p.key == feed.spike_key]
    top, rest = np.sort(pump)[-1], np.sort(pump)[-2]
    assert ts[int(np.argmax(pump))] == feed.spike_t and top - rest > 1.0


def test_demo_runs_as_the_readme_says():
    run = run_cli("demo", timeout=90)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    table = [
        line.split() for line in out.splitlines() if line.startswith(("plant1/", "plant2/")) and "%" in line
    ]
    assert len(table) == 5
    assert all(int(row[1]) == 14 * 48 for row in table)  # every point got its forecast
    ratios = [float(row[4]) for row in table]
    coverage = [float(row[5].rstrip("%")) for row in table]
    assert np.median(ratios) < 1.0  # better than the last value on most sensors
    assert all(85 <= c <= 100 for c in coverage)
    assert "flagged, score" in out and "NOT flagged" not in out
