from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pytest

from lstmstream.learner import Fleet, Settings
from lstmstream.season import DAY, GAPS, PROFILE_RATE, Clock, calendar, parse_season, parse_tz, utc_offset

T0 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
FIVE_MIN = 300.0


def epoch(*args) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def has_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
        return True
    except ZoneInfoNotFoundError:
        return False


def test_calendar_features_of_known_utc_times():
    got = calendar(np.array([T0, epoch(2024, 1, 3, 6), epoch(2024, 1, 7, 18)]))
    monday, wednesday_6h, sunday_18h = got
    np.testing.assert_allclose(monday, [0, 1, 0, 1], atol=1e-12)
    np.testing.assert_allclose(wednesday_6h[:2], [1, 0], atol=1e-12)  # a quarter of the day
    week = 2 * np.pi * (2 + 0.25) / 7
    np.testing.assert_allclose(wednesday_6h[2:], [np.sin(week), np.cos(week)], atol=1e-12)
    np.testing.assert_allclose(sunday_18h[:2], [-1, 0], atol=1e-12)
    week = 2 * np.pi * (6 + 0.75) / 7
    np.testing.assert_allclose(sunday_18h[2:], [np.sin(week), np.cos(week)], atol=1e-12)


def test_time_zones_shift_local_time():
    ts = np.array([epoch(2024, 1, 15, 12), epoch(2024, 7, 15, 12)])
    np.testing.assert_array_equal(utc_offset(ts, parse_tz("UTC")), [0, 0])
    np.testing.assert_array_equal(utc_offset(ts, parse_tz("+05:30")), [19800, 19800])
    np.testing.assert_array_equal(utc_offset(ts, parse_tz("-0800")), [-28800, -28800])
    with pytest.raises(ValueError, match="time zone"):
        parse_tz("Mars/Olympus")


@pytest.mark.skipif(not has_zone("Asia/Kolkata") or not has_zone("Europe/Berlin"), reason="no tz database")
def test_iana_zones_a_dst_free_one_is_a_fixed_offset_and_berlin_moves_in_summer():
    ts = T0 + np.arange(0, 365) * DAY + 12 * 3600
    np.testing.assert_array_equal(utc_offset(ts, parse_tz("Asia/Kolkata")), 19800)
    berlin = utc_offset(ts, parse_tz("Europe/Berlin"))
    assert set(berlin) == {3600, 7200}
    assert berlin[0] == 3600 and berlin[180] == 7200


def test_season_and_calendar_options_parse_or_say_what_is_wrong():
    assert parse_season("auto") == [("auto", 0.0)]
    assert parse_season("288") == [("points", 288.0)]
    assert parse_season("1d, 1w") == [("seconds", DAY), ("seconds", 7 * DAY)]
    assert parse_season("90m") == [("seconds", 5400.0)]
    for bad in ("1", "daily", "-3d", "0d", "1d,"):
        with pytest.raises(ValueError, match="season"):
            parse_season(bad)
    with pytest.raises(ValueError, match="calendar"):
        Clock("sometimes", "UTC", "auto", 288, 1)


def feed(fleet: Fleet, key: str, ts, ys):
    row = np.array([fleet.add(key)])
    for t, y in zip(ts, ys, strict=True):
        fleet.learn(row, np.array([[y]]), np.array([t]))
    return int(row[0])


def test_auto_stays_off_for_sequence_number_times():
    f = Fleet(Settings(hidden=4, window=4, calendar="auto"))
    row = feed(f, "counter", np.arange(40.0), np.sin(np.arange(40)))
    info = f.describe(row)
    assert info["interval"] == 1.0 and info["seasons"] == [] and not info["calendar"]
    assert info["inputs"] == ["level", "change"]
    x = f.window.read(np.array([row]))[0]
    assert (x[:, 2:] == 0).all()  # the calendar and season inputs stay zero


def test_seasons_that_stay_off_leave_the_rings_and_moments_as_they_were():
    """What lets a stream without any season skip the ring updates: its seasonal inputs are zero
    and nothing but the pending season number would change, in a fleet (mixed) or alone."""
    f = Fleet(Settings(hidden=4, window=4))
    rows = np.array([f.add("counter"), f.add("clocked")])
    for i in range(40):
        f.learn(rows, np.array([[np.sin(i)], [np.cos(i)]]), np.array([float(i), T0 + FIVE_MIN * i]))
    alone = Fleet(Settings(hidden=4, window=4))
    feed(alone, "counter", np.arange(40.0), np.sin(np.arange(40)))
    for clock in (f.clock, alone.clock):
        assert clock.n_season == 2 and not clock.period[0].any()
        for name in ("ring", "ring_s", "pend", "pend_n", "pend_slot", "s_prev", "s_ok", "s_mom"):
            assert not clock.arrays()[name][0].any(), name
    assert f.clock.period[1].all()  # the clocked stream's seasons did switch on
    np.testing.assert_array_equal(f.window.x[0], alone.window.x[0])
    assert not f.window.x[0, :, 2:].any()


def test_auto_turns_on_for_a_five_minute_clock_and_a_daily_one_gets_only_a_weekly_season():
    f = Fleet(Settings(hidden=4, window=4, calendar="auto"))
    fast = feed(f, "fast", T0 + FIVE_MIN * np.arange(20), np.ones(20))
    daily = feed(f, "daily", T0 + DAY * np.arange(20), np.ones(20))
    assert f.describe(fast) == {
        "interval": 300.0,
        "seasons": [DAY, 7 * DAY],
        "season_slots": [288, 288],
        "season_gain": [0.0, 0.0],
        "calendar": True,
        "inputs": ["level", "change", "calendar", "season 1d", "season 1w"],
    }
    assert f.describe(daily)["seasons"] == [7 * DAY] and f.describe(daily)["season_slots"] == [7]
    assert not f.describe(daily)["calendar"]


def test_the_interval_is_the_median_gap_so_one_outage_does_not_fool_it():
    ts = T0 + FIVE_MIN * np.array([0, 1, 2, 30, 31, 32, 33, 34, 35, 36])
    f = Fleet(Settings(hidden=4, window=4))
    row = feed(f, "gappy", ts, np.ones(len(ts)))
    assert f.describe(row)["interval"] == FIVE_MIN


def test_seasonal_input_is_last_seasons_change_across_wraparound_with_full_trust():
    """A 5-point season on a counter clock, a signal that repeats exactly: the input for the next
    point is (y[t+1-5] - y[t-5]) / std, and since the stream does follow it, its gain is 1."""
    clock = Clock("off", "UTC", "5", 288, 1, rows=1)
    rows, std = np.array([0]), np.array([[2.0]])
    ys = np.tile(np.random.default_rng(0).standard_normal(5), 12)
    prev = ys[0]
    for i, y in enumerate(ys):
        x = clock.inputs(rows, np.array([[y]]), np.array([[prev]]), np.array([float(i)]), std, np.array([i]))[
            0
        ]
        prev = y
        if i >= GAPS + 5 + 2:  # decided at point GAPS, one season of profile, a couple of checks
            assert x[0] == pytest.approx((ys[i + 1 - 5] - ys[i - 5]) / 2.0)
    assert clock.slots[0, 0] == 5 and clock.ring.shape == (1, 1, 5, 1)
    assert clock.gain(rows)[0, 0, 0] == pytest.approx(1.0)


def test_a_stream_without_a_season_gets_next_to_no_seasonal_input():
    clock = Clock("off", "UTC", "24", 288, 1, rows=1)
    rows, std = np.array([0]), np.array([[1.0]])
    ys = np.random.default_rng(3).standard_normal(24 * 40)
    inputs = []
    for i, y in enumerate(ys):
        prev = ys[i - 1] if i else y
        inputs.append(
            clock.inputs(rows, np.array([[y]]), np.array([[prev]]), np.array([float(i)]), std, np.array([i]))[
                0, 0
            ]
        )
    assert clock.gain(rows)[0, 0, 0] < 0.1
    assert np.abs(inputs[-200:]).mean() < 0.1 * np.abs(np.diff(ys)).mean()


def test_a_coarse_ring_averages_each_slot_and_keeps_last_season_while_a_slot_fills():
    """One-minute points into 288 five-minute slots: a slot holds the mean of its five points,
    averaged over the seasons, yesterday's value stays readable while today's slot fills, and
    the change to the next slot is spread over the slot's points."""
    clock = Clock("off", "UTC", "1d", 288, 1, rows=1)
    rows, std = np.array([0]), np.array([[1.0]])
    minutes = np.arange(2 * 1440 + 22)
    ys = minutes % 1440 + 1000.0 * (minutes >= 1440)  # day two is day one plus 1000
    for m, y in zip(minutes, ys, strict=True):
        clock.inputs(
            rows,
            np.array([[float(y)]]),
            np.array([[float(y)]]),
            np.array([T0 + 60.0 * m]),
            std,
            np.array([m]),
        )
    day_one, day_two = np.mean(ys[20:25]), np.mean(ys[1440 + 20 : 1440 + 25])
    assert clock.ring[0, 0, 4, 0] == pytest.approx(day_one + PROFILE_RATE * (day_two - day_one))
    assert clock.ring_s[0, 0, 4] == (T0 + 60.0 * (1440 + 20)) // DAY + 1  # day two's slot 4, written
    assert clock.pend_n[0, 0] == 2 and clock.pend_slot[0, 0] == 4  # day three's slot 4 is filling
    raw, ok = clock.changes(rows, np.array([T0 + 60.0 * (2 * 1440 + 21)]), std)
    ring = clock.ring[0, 0, :, 0]
    assert ok[0, 0] and raw[0, 0, 0] == pytest.approx((ring[5] - ring[4]) * 60 / 300)


def test_resumed_streams_carry_the_clock_and_ring():
    s = Settings(hidden=4, window=4, season="12")
    ts = T0 + FIVE_MIN * np.arange(80)
    ys = np.sin(np.arange(80) * 2 * np.pi / 12) + 0.1 * np.random.default_rng(1).standard_normal(80)
    a = Fleet(s)
    row = feed(a, "k", ts[:50], ys[:50])
    b = Fleet(s)
    (b_row,) = b.restore(["k"], a.export(np.array([row])))
    for t, y in zip(ts[50:], ys[50:], strict=True):
        sa = a.learn(np.array([row]), np.array([[y]]), np.array([t]))
        sb = b.learn(np.array([b_row]), np.array([[y]]), np.array([t]))
        np.testing.assert_array_equal(sa.v, sb.v)
    assert a.describe(row) == b.describe(b_row)


def daily_profile(days: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Five-minute points of a daily cycle that a short window cannot see coming (an irregular
    profile, the same every day) plus noise."""
    rng = np.random.default_rng(seed)
    profile = np.cumsum(rng.standard_normal(288))
    profile -= np.linspace(0, profile[-1], 288)  # the day ends where it started
    t = T0 + FIVE_MIN * np.arange(days * 288)
    return t, np.tile(profile, days) + 0.3 * rng.standard_normal(len(t))


def test_a_daily_cycle_is_learned_clearly_better_with_the_seasonal_input():
    ts, ys = daily_profile(4)
    mae = {}
    for season in ("off", "auto"):
        f = Fleet(Settings(hidden=8, window=8, calendar="off", season=season))
        row = np.array([f.add("profile")])
        errs = [f.learn(row, np.array([[y]]), np.array([t])).err[0, 0] for t, y in zip(ts, ys, strict=True)]
        mae[season] = np.mean(np.abs(errs[3 * 288 :]))  # the last day
    assert mae["auto"] < 0.6 * mae["off"]


def test_inputs_that_stay_off_change_no_forecast():
    """A counter-clocked stream under the automatic settings learns as with no extra inputs."""
    ys = np.sin(np.arange(60) / 4.0)
    steps = {}
    for name, s in (
        ("auto", Settings(hidden=4, window=4, calendar="auto", dtype="float64")),
        ("off", Settings(hidden=4, window=4, calendar="off", season="off", dtype="float64")),
    ):
        f = Fleet(s)
        row = np.array([f.add("k")])
        steps[name] = [f.learn(row, np.array([[y]]), np.array([float(i)])).v[0, 0] for i, y in enumerate(ys)]
    np.testing.assert_allclose(steps["auto"], steps["off"], rtol=1e-12)  # the same up to float64 rounding


def clocked_streams(count: int, points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Times (points, count) of streams sampled every minute, 5 minutes or hour, with jitter and
    the odd outage, and values (points, count) with a daily cycle."""
    rng = np.random.default_rng(seed)
    step = rng.choice([60.0, FIVE_MIN, 3600.0], count)
    gaps = np.where(rng.random((points, count)) < 0.01, 300.0, 1.0) * step + rng.normal(0, 2, (points, count))
    ts = T0 + rng.uniform(0, DAY, count) + np.cumsum(gaps, axis=0)
    return ts, np.sin(ts * 2 * np.pi / DAY) + 0.2 * rng.standard_normal((points, count))


@pytest.mark.parametrize("season", ["auto", "1h,90m"])
def test_a_batch_of_streams_gets_the_same_inputs_as_each_stream_alone(season):
    """The batched ring updates (all streams in row order, or a shuffled subset) match one
    stream at a time exactly, whichever slots finish, carry on or start over in a call."""
    count, points, rng = 6, 400, np.random.default_rng(7)
    ts, ys = clocked_streams(count, points, 7)
    batch = Clock("auto", "UTC", season, 24, 1, rows=count)
    alone = [Clock("auto", "UTC", season, 24, 1, rows=1) for _ in range(count)]
    n, prev, std = np.zeros(count, np.int64), ys[0].copy(), np.full((count, 1), 0.7)
    seasonal = 0
    for i in range(points):
        rows = np.arange(count) if i % 2 else rng.permutation(count)[: rng.integers(1, count + 1)]
        y = ys[n[rows], rows][:, None]
        got = batch.inputs(rows, y, prev[rows, None], ts[n[rows], rows], std[rows], n[rows])
        for b, r in enumerate(rows):
            one = alone[r].inputs(
                np.array([0]), y[b : b + 1], prev[r, None, None], ts[n[r], r, None], std[:1], n[r, None]
            )
            np.testing.assert_array_equal(got[b], one[0])
        seasonal += np.count_nonzero(got[:, -batch.n_season :])
        prev[rows], n[rows] = y[:, 0], n[rows] + 1
    assert seasonal > points  # the seasonal inputs did switch on
    for r in range(count):
        for name, a in batch.arrays().items():  # but last_t, only kept until a stream is decided
            if name == "last_t":
                continue
            np.testing.assert_array_equal(a[r], alone[r].arrays()[name][0], err_msg=name)


def test_a_fleet_that_grows_keeps_learning_its_seasons_exactly():
    """Growing the fleet reallocates the rings; the stream learned before goes on as if alone."""
    ts, ys = daily_profile(2)
    s = Settings(hidden=4, window=4, season="1d", season_slots=48)
    alone, crowded = Fleet(s), Fleet(s)
    row = np.array([alone.add("k")])
    crowded_row = np.array([crowded.add("k")])
    for i, (t, y) in enumerate(zip(ts, ys, strict=True)):
        if i == 300:
            for k in range(20):  # past the initial capacity: every array is reallocated
                crowded.add(f"other{k}")
        a = alone.learn(row, np.array([[y]]), np.array([t]))
        b = crowded.learn(crowded_row, np.array([[y]]), np.array([t]))
        np.testing.assert_array_equal(a.v, b.v)
    assert crowded.capacity > 8 and alone.describe(0)["season_gain"][0] > 0
