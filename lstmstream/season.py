"""Calendar and seasonal inputs from each point's time: pure functions over arrays (no I/O).

Real sensor streams repeat daily and weekly; a window of k points (16 x 5 min) cannot see that.
Two kinds of input bring it in:

  calendar  time of day and day of week as sin/cos pairs of the local time, so the model can
            tell night from day and Sunday from Monday;
  season    the value one season (a day, by default) before the point being forecast, from a
            ring of slots indexed by the phase of the time within the season: slot(t) =
            floor(P * ((t + offset) mod period) / period). Indexing by time rather than by count
            keeps the lag right across missing points and jitter, and lets a fast stream keep a
            coarse ring (P slots) instead of every point of the season.

Which inputs a stream gets is decided from its first `GAPS` sampling intervals (their median is
the stream's interval): calendar inputs need times that look like epoch seconds and a sub-day
interval; the automatic season is a day for sampling up to 6 h, a week for sampling up to a day.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

MINUTE, HOUR, DAY, WEEK = 60.0, 3600.0, 86400.0, 7 * 86400.0
EPOCH_RANGE = (1e8, 1e10)  # 1973 .. 2286 in epoch seconds: anything else is a counter, not a clock
GAPS = 8  # sampling intervals observed before a stream's inputs are decided
UNITS = {"s": 1.0, "m": MINUTE, "h": HOUR, "d": DAY, "w": WEEK}


def parse_season(text: str) -> tuple[str, float]:
    """'auto', 'off', a number of points ('288') or a duration ('1d', '12h', '90m', '1w').

    Returns (kind, amount) with kind in {"auto", "off", "points", "seconds"}.
    """
    text = text.strip().lower()
    if text in ("auto", "off"):
        return text, 0.0
    if text.isdigit() and int(text) >= 2:
        return "points", float(text)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text)
    if m and float(m[1]) > 0:
        return "seconds", float(m[1]) * UNITS[m[2]]
    raise ValueError(f"season {text!r}: expected auto, off, a number of points >= 2, or a duration like 1d")


def parse_tz(name: str) -> timezone | ZoneInfo:
    """'UTC', a fixed offset '+05:30', or an IANA zone name ('Europe/Berlin')."""
    m = re.fullmatch(r"([+-])(\d\d):?(\d\d)", name.strip())
    if m:
        minutes = int(m[2]) * 60 + int(m[3])
        return timezone(timedelta(minutes=minutes if m[1] == "+" else -minutes))
    if name.strip().upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"time zone {name!r}: not UTC, +HH:MM or a known IANA zone name") from e


def utc_offset(ts: np.ndarray, tz: timezone | ZoneInfo) -> np.ndarray:
    """Seconds to add to each epoch time to get the local wall-clock time (DST included)."""
    if isinstance(tz, timezone):
        return np.full(len(ts), tz.utcoffset(None).total_seconds())
    out = np.zeros(len(ts))
    for j, t in enumerate(ts):
        if EPOCH_RANGE[0] < t < EPOCH_RANGE[1]:
            out[j] = datetime.fromtimestamp(t, tz).utcoffset().total_seconds()
    return out


def looks_like_epoch(ts: np.ndarray) -> np.ndarray:
    return (ts > EPOCH_RANGE[0]) & (ts < EPOCH_RANGE[1])


def calendar(local: np.ndarray) -> np.ndarray:
    """(B,) local times in seconds -> (B, 4): sin/cos of time of day, sin/cos of day of week."""
    day = 2 * np.pi * (local % DAY) / DAY
    week = 2 * np.pi * ((local + 3 * DAY) % WEEK) / WEEK  # 1970-01-01 was a Thursday: Monday 0:00 is 0
    return np.stack((np.sin(day), np.cos(day), np.sin(week), np.cos(week)), axis=1)


def auto_period(dt: np.ndarray, epoch: np.ndarray) -> np.ndarray:
    """The natural season of a clocked stream sampled every dt seconds: a day, a week, or 0 (none)."""
    return np.where(epoch & (dt <= 6 * HOUR), DAY, np.where(epoch & (dt <= DAY), WEEK, 0.0))


def slot(local: np.ndarray, period: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """The ring slot of each time: the phase within its season, in `slots` steps."""
    phase = np.mod(local, np.where(period > 0, period, 1.0)) / np.where(period > 0, period, 1.0)
    return np.minimum((phase * slots).astype(np.int64), np.maximum(slots - 1, 0))


class Clock:
    """Per-stream sampling interval, calendar switch and seasonal ring, and the inputs they give.

    State is arrays with the stream on the leading axis (like Window and Scaler), so checkpoints
    and resumed streams carry it. The ring keeps, per slot, the mean of the values of its latest
    completed visit with that visit's season number + 1 (0: empty); the slot being filled waits
    in `pend_*` until a point lands in another slot, so the value of the same phase one season
    ago stays readable while the current slot fills.
    """

    def __init__(self, calendar: str, tz: str, season: str, slots: int, size: int, rows: int = 0):
        if calendar not in ("auto", "on", "off"):
            raise ValueError(f"calendar {calendar!r}: expected auto, on or off")
        self.mode, self.tz, self.size = calendar, parse_tz(tz), size
        self.kind, self.amount = parse_season(season)
        self.width = 0 if self.kind == "off" else int(self.amount) if self.kind == "points" else slots
        self.n_calendar = 0 if calendar == "off" else 4
        self.n_season = 0 if self.kind == "off" else 2 * size
        self.n_inputs = self.n_calendar + self.n_season
        self._alloc(rows)

    def _alloc(self, rows: int) -> None:
        z = np.zeros
        self.n, self.last_t, self.gaps = z(rows, np.int64), z(rows), z((rows, GAPS))
        self.dt, self.cal, self.period, self.slots = z(rows), z(rows, np.int8), z(rows), z(rows, np.int64)
        self.ring, self.ring_s = z((rows, self.width, self.size)), z((rows, self.width), np.int64)
        self.pend, self.pend_n = z((rows, self.size)), z(rows, np.int64)
        self.pend_slot, self.pend_s = z(rows, np.int64), z(rows, np.int64)

    NAMES = (
        "n",
        "last_t",
        "gaps",
        "dt",
        "cal",
        "period",
        "slots",
        "ring",
        "ring_s",
        "pend",
        "pend_n",
        "pend_slot",
        "pend_s",
    )

    def arrays(self) -> dict[str, np.ndarray]:
        return {n: getattr(self, n) for n in self.NAMES}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        for n in self.NAMES:
            setattr(self, n, arrays[n])

    # ---- deciding a stream's inputs --------------------------------------------------------

    def _clock(self, rows: np.ndarray, ts: np.ndarray) -> None:
        """Count the sampling intervals; after GAPS of them, fix the stream's inputs."""
        n = self.n[rows]
        early = (n > 0) & (n <= GAPS)
        if early.any():
            r = rows[early]
            self.gaps[r, n[early] - 1] = ts[early] - self.last_t[r]
        self.n[rows] = n + 1
        self.last_t[rows] = ts
        ready = n == GAPS
        if ready.any():
            self._decide(rows[ready], ts[ready])

    def _decide(self, rows: np.ndarray, ts: np.ndarray) -> None:
        dt = np.median(self.gaps[rows], axis=1)
        dt = np.where(dt > 0, dt, 0.0)
        epoch = looks_like_epoch(ts)
        self.dt[rows] = dt
        on = np.full(len(rows), self.mode == "on") | ((self.mode == "auto") & epoch & (dt > 0) & (dt < DAY))
        self.cal[rows] = on & (self.n_calendar > 0) & (dt > 0)
        if self.kind == "auto":
            period = auto_period(dt, epoch)
        elif self.kind == "points":
            period = self.amount * dt
        else:
            period = np.full(len(rows), self.amount if self.kind == "seconds" else 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            slots = np.where(dt > 0, np.minimum(np.round(period / np.where(dt > 0, dt, 1.0)), self.width), 0)
        ok = (period > 0) & (slots >= 2)
        self.period[rows] = np.where(ok, period, 0.0)
        self.slots[rows] = np.where(ok, slots, 0).astype(np.int64)

    # ---- inputs ----------------------------------------------------------------------------

    def _phase(self, rows: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ring slot of each time and its season number + 1 (local time)."""
        local = ts + utc_offset(ts, self.tz)
        period = self.period[rows]
        safe = np.where(period > 0, period, 1.0)
        return slot(local, period, self.slots[rows]), np.floor(local / safe).astype(np.int64) + 1

    def _read(self, rows: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ring's value one season before each time, and whether there is one."""
        j, s = self._phase(rows, ts)
        valid = (self.period[rows] > 0) & (self.ring_s[rows, j] == s - 1)
        return self.ring[rows, j], valid

    def features(self, rows: np.ndarray, ys: np.ndarray, ts: np.ndarray, std: np.ndarray) -> np.ndarray:
        """The calendar and seasonal inputs (B, n_inputs) for points ys at ts; reads state only."""
        out = np.zeros((len(rows), self.n_inputs))
        t_next = ts + self.dt[rows]
        if self.n_calendar:
            local = t_next + utc_offset(t_next, self.tz)
            out[:, :4] = calendar(local) * self.cal[rows, None]
        if self.n_season:
            lag, ok_lag = self._read(rows, t_next)
            now, ok_now = self._read(rows, ts)
            D, at = self.size, self.n_calendar
            out[:, at : at + D] = np.where(ok_lag[:, None], (lag - ys) / std, 0.0)
            out[:, at + D :] = np.where((ok_lag & ok_now)[:, None], (lag - now) / std, 0.0)
        return out

    def inputs(self, rows: np.ndarray, ys: np.ndarray, ts: np.ndarray, std: np.ndarray) -> np.ndarray:
        """Take in the points' times and values, and return their calendar and seasonal inputs."""
        self._clock(rows, ts)
        if self.n_season:
            self._commit(rows, ts)
        out = self.features(rows, ys, ts, std)
        if self.n_season:
            self._pend(rows, ys, ts)
        return out

    def _commit(self, rows: np.ndarray, ts: np.ndarray) -> None:
        """Write each finished slot (the point at ts is in another one) to the ring."""
        j, s = self._phase(rows, ts)
        done = (self.pend_n[rows] > 0) & ((j != self.pend_slot[rows]) | (s != self.pend_s[rows]))
        r = rows[done]
        if len(r):
            self.ring[r, self.pend_slot[r]] = self.pend[r] / self.pend_n[r, None]
            self.ring_s[r, self.pend_slot[r]] = self.pend_s[r]
            self.pend[r], self.pend_n[r] = 0.0, 0

    def _pend(self, rows: np.ndarray, ys: np.ndarray, ts: np.ndarray) -> None:
        on = self.period[rows] > 0
        r, (j, s) = rows[on], self._phase(rows[on], ts[on])
        self.pend[r] += ys[on]
        self.pend_n[r] += 1
        self.pend_slot[r], self.pend_s[r] = j, s

    def describe(self, row: int) -> dict:
        """What was detected for a stream: interval, season, and which inputs it gets."""
        decided = self.n[row] > GAPS
        period = float(self.period[row])
        return {
            "interval": float(self.dt[row]) if decided and self.dt[row] > 0 else None,
            "season": period if period > 0 else None,
            "season_slots": int(self.slots[row]),
            "calendar": bool(self.cal[row]),
        }
