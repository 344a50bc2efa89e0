"""Calendar and seasonal inputs from each point's time: pure functions over arrays (no I/O).

Real sensor streams repeat daily and weekly; a window of k points (16 x 5 min) cannot see that.
Two kinds of input bring it in:

  calendar  time of day and day of week as sin/cos pairs of the local time, so the model can
            tell night from day and Sunday from Monday;
  season    for each season (a day and a week by default) the seasonal change: how the
            stream moved from this phase of the season to the next in past seasons,
            (p[j + 1] - p[j]) / std, where p is a seasonal profile: a ring of P slots indexed by
            the phase of the time within the season, slot(t) = floor(P * ((t + offset) mod
            period) / period), each slot an exponential average of its values over the past
            seasons. Indexing by time rather than by count keeps the lag right across missing
            points and jitter, and lets a fast stream keep a coarse ring (the change to the next
            slot is then spread over the slot's points). The input is multiplied by its gain:
            the online least-squares coefficient of the stream's actual next change on it,
            clipped to [0, 1], so a stream without that season gets (almost) nothing, not noise.

Which inputs a stream gets is decided from its first `GAPS` sampling intervals (their median is
the stream's interval): calendar inputs need times that look like epoch seconds and a sub-day
interval; the automatic seasons are a day (sampling up to 6 h) and a week (sampling up to a day).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from .rows import contiguous

MINUTE, HOUR, DAY, WEEK = 60.0, 3600.0, 86400.0, 7 * 86400.0
EPOCH_RANGE = (1e8, 1e10)  # 1973 .. 2286 in epoch seconds: anything else is a counter, not a clock
GAPS = 8  # sampling intervals observed before a stream's inputs are decided
PROFILE_RATE = 0.3  # a slot's value follows its phase's values over the last few seasons
TRUST_POINTS = 1000  # the seasonal input's gain is a regression over about this many points
UNITS = {"s": 1.0, "m": MINUTE, "h": HOUR, "d": DAY, "w": WEEK}

# Operands of the per-point ring updates as 0-d arrays of the arrays' own types: NumPy takes
# them ~0.3 µs faster than Python numbers (no scalar conversion), which adds up over ~60 calls.
_F0, _F1, _I0, _I1 = np.zeros(()), np.ones(()), np.zeros((), np.int64), np.ones((), np.int64)
_PROFILE_RATE, _TRUST_RATE = np.array(PROFILE_RATE), np.array(1 / TRUST_POINTS)


def parse_season(text: str) -> list[tuple[str, float]]:
    """'auto', 'off', or a comma-separated list of seasons, each a number of points ('288') or a
    duration ('1d', '12h', '90m', '1w'). Returns [(kind, amount)], kind in auto/off/points/seconds."""
    text = text.strip().lower()
    if text in ("auto", "off"):
        return [(text, 0.0)]
    return [_one_season(part.strip()) for part in text.split(",")]


def _one_season(text: str) -> tuple[str, float]:
    if text.isdigit() and int(text) >= 2:
        return "points", float(text)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text)
    if m and float(m[1]) > 0:
        return "seconds", float(m[1]) * UNITS[m[2]]
    raise ValueError(
        f"season {text!r}: expected auto, off, or points >= 2 or durations like 1d, comma-separated"
    )


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


def span(seconds: float | None) -> str:
    """A duration the way people write it: 300 -> 5m, 86400 -> 1d; '-' for none."""
    if seconds is None:
        return "-"
    for unit in ("w", "d", "h", "m"):
        if seconds >= UNITS[unit] and seconds % UNITS[unit] == 0:
            return f"{seconds / UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def looks_like_epoch(ts: np.ndarray) -> np.ndarray:
    return (ts > EPOCH_RANGE[0]) & (ts < EPOCH_RANGE[1])


def calendar(local: np.ndarray) -> np.ndarray:
    """(B,) local times in seconds -> (B, 4): sin/cos of time of day, sin/cos of day of week."""
    day = 2 * np.pi * (local % DAY) / DAY
    week = 2 * np.pi * ((local + 3 * DAY) % WEEK) / WEEK  # 1970-01-01 was a Thursday: Monday 0:00 is 0
    return np.stack((np.sin(day), np.cos(day), np.sin(week), np.cos(week)), axis=1)


def auto_periods(dt: np.ndarray, epoch: np.ndarray) -> np.ndarray:
    """(B, 2): a daily season for clocked streams sampled up to every 6 h, a weekly one up to daily."""
    return np.stack(
        (np.where(epoch & (dt <= 6 * HOUR), DAY, 0.0), np.where(epoch & (dt <= DAY), WEEK, 0.0)), 1
    )


def _gain(mom: np.ndarray) -> np.ndarray:
    """(B, S, size) from the moments (B, S, 2, size): the regression coefficient cov / var in [0, 1]."""
    var, cov = mom[:, :, 0], mom[:, :, 1]
    g = np.divide(cov, var, out=np.zeros(cov.shape), where=var > _F0)
    np.maximum(g, _F0, out=g)
    return np.minimum(g, _F1, out=g)


class Clock:
    """Per-stream sampling interval, calendar switch and seasonal rings, and the inputs they give.

    State is arrays with the stream on the leading axis (like Window and Scaler), so checkpoints
    and resumed streams carry it; season k of a stream is column k. A ring keeps, per slot, the
    profile value and the season number + 1 of its last update (0: empty); the slot being
    filled waits in `pend_*` until a point lands in another slot, so last season's value of the
    same phase stays readable while the current slot fills.
    """

    NAMES = ("last_t", "gaps", "dt", "cal", "period", "slots", "share", "ring", "ring_s", "pend", "pend_n",
             "pend_slot", "pend_s", "s_prev", "s_ok", "s_mom")  # fmt: skip

    def __init__(self, calendar: str, tz: str, season: str, slots: int, size: int, rows: int = 0):
        if calendar not in ("auto", "on", "off"):
            raise ValueError(f"calendar {calendar!r}: expected auto, on or off")
        self.mode, self.tz, self.size = calendar, parse_tz(tz), size
        self.offset = self.tz.utcoffset(None).total_seconds() if isinstance(self.tz, timezone) else None
        self.seasons = parse_season(season)
        kind = self.seasons[0][0]
        self.S = 0 if kind == "off" else 2 if kind == "auto" else len(self.seasons)
        self.width = max(int(a) if k == "points" else slots for k, a in self.seasons) if self.S else 0
        self.n_calendar = 0 if calendar == "off" else 4
        self.n_season = self.S * size
        self.n_inputs = self.n_calendar + self.n_season
        self._stride = self.S * self.width  # slots per stream in the flat rings; season k from k * width
        self._season_at = np.arange(self.S)[None] * self.width
        self._value_at = np.arange(size)
        self._alloc(rows)

    def _alloc(self, rows: int) -> None:
        z, S, W, D = np.zeros, self.S, self.width, self.size
        self.last_t, self.gaps = z(rows), z((rows, GAPS))
        self.dt, self.cal = z(rows), z(rows, np.int8)
        self.period, self.slots, self.share = z((rows, S)), z((rows, S), np.int64), z((rows, S))
        self.ring, self.ring_s = z((rows, S, W, D)), z((rows, S, W), np.int64)
        self.pend, self.pend_n = z((rows, S, D)), z((rows, S), np.int64)
        self.pend_slot, self.pend_s = z((rows, S), np.int64), z((rows, S), np.int64)
        self.s_prev, self.s_ok = z((rows, S, D)), z((rows, S), np.int8)
        self.s_mom = z((rows, S, 2, D))  # running E[s^2], E[s * change]
        self._flatten()

    def _flatten(self) -> None:
        """Flat views of the rings: one gather or scatter with computed positions reaches any
        slot of any season of any stream (far fewer NumPy calls than indexing by (row, k, slot))."""
        self.ring, self.ring_s = np.ascontiguousarray(self.ring), np.ascontiguousarray(self.ring_s)
        self._ring, self._ring_s = self.ring.reshape(-1), self.ring_s.reshape(-1)

    def arrays(self) -> dict[str, np.ndarray]:
        return {n: getattr(self, n) for n in self.NAMES}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        for n in self.NAMES:
            setattr(self, n, arrays[n])
        self._flatten()

    # ---- deciding a stream's inputs --------------------------------------------------------

    def _clock(self, rows: np.ndarray, ts: np.ndarray, n: np.ndarray) -> None:
        """Record the first GAPS sampling intervals (n: points seen before), then fix the inputs."""
        if (n[0] if len(n) == 1 else n.min()) > GAPS:  # decided: last_t is only needed until then
            return
        early = (n > 0) & (n <= GAPS)
        if early.any():
            r = rows[early]
            self.gaps[r, n[early] - 1] = ts[early] - self.last_t[r]
        self.last_t[rows] = ts
        ready = n == GAPS
        if ready.any():
            self._decide(rows[ready], ts[ready])

    def _decide(self, rows: np.ndarray, ts: np.ndarray) -> None:
        dt = np.median(self.gaps[rows], axis=1)
        dt = np.where(dt > 0, dt, 0.0)
        epoch = looks_like_epoch(ts)
        self.dt[rows] = dt
        auto = (self.mode == "auto") & epoch & (dt > 0) & (dt < DAY)
        self.cal[rows] = (self.n_calendar > 0) & (dt > 0) & ((self.mode == "on") | auto)
        if not self.S:
            return
        if self.seasons[0][0] == "auto":
            period = auto_periods(dt, epoch)
        else:
            period = np.stack(
                [a * dt if k == "points" else np.full(len(rows), a) for k, a in self.seasons], 1
            )
        safe_dt = np.where(dt > 0, dt, np.inf)[:, None]
        slots = np.minimum(np.round(period / safe_dt), self.width)
        ok = (period > 0) & (slots >= 2)
        self.period[rows] = np.where(ok, period, 0.0)
        self.slots[rows] = np.where(ok, slots, 0).astype(np.int64)
        self.share[rows] = np.where(ok, dt[:, None] * slots / np.where(ok, period, 1.0), 0.0)

    # ---- the seasonal rings (all seasons at once: arrays (B, S) and (B, S, size)) ---------

    def _phase(self, ix: slice | np.ndarray, local: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per season (B, S): the slot of each local time, its season number, the last slot of
        the ring, and whether the season is on. An off season (period 0) gets slot 0."""
        period, slots = self.period[ix], self.slots[ix]
        on = period > _F0
        safe = np.where(on, period, _F1)
        local = local[:, None]
        top = slots - _I1
        np.maximum(top, _I0, out=top)
        q = np.mod(local, safe)
        q /= safe
        q *= slots.astype(np.float64)
        j = q.astype(np.int64)
        np.minimum(j, top, out=j)
        np.divide(local, safe, out=q)
        np.floor(q, out=q)
        return j, q.astype(np.int64), top, on

    def _base(self, rows: np.ndarray) -> np.ndarray:
        """(B, S): where slot 0 of each season of each stream is in the flat rings."""
        if len(rows) == 1:
            return int(rows[0]) * self._stride + self._season_at
        return rows[:, None] * self._stride + self._season_at

    def _cells(self, at: np.ndarray) -> np.ndarray:
        """Flat positions (..., size) of the values of the ring slots at flat positions `at`."""
        return at[..., None] if self.size == 1 else at[..., None] * self.size + self._value_at

    def _read(
        self, base: np.ndarray, j: np.ndarray, season: np.ndarray, top: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Profile values (B, S, size) of slot j and of the next, and whether both are as of one
        season before (B, S): last written in season number `season` - 1, the next slot in
        `season` when it wraps around to slot 0 of the next season (ring_s keeps number + 1)."""
        here = base + j
        nxt = here + _I1
        wrap = j == top
        np.copyto(nxt, base, where=wrap)
        ok = self._ring_s[here] == season
        ok &= self._ring_s[nxt] == season + wrap
        return self._ring[self._cells(here)], self._ring[self._cells(nxt)], ok

    def _seasonal(
        self, ix: slice | np.ndarray, p: np.ndarray, p_next: np.ndarray, ok: np.ndarray, std: np.ndarray
    ) -> np.ndarray:
        """Each season's change over the next interval (B, S, size), where it is known (ok).

        (p[j + 1] - p[j]) * dt / (period / slots) for the slot j of the time: the change to the next slot,
        spread over the points of a slot when the ring is coarser than the sampling.
        """
        share = self.share[ix]  # 0 for a season that is off
        if np.count_nonzero(ok) < ok.size:
            share = share * ok
        p_next -= p
        p_next *= share[:, :, None] / std[:, None, :]
        return p_next

    def gain(self, rows: np.ndarray | slice) -> np.ndarray:
        """(B, S, size): how much of each seasonal change the stream has followed, cov / var in [0, 1]."""
        return _gain(self.s_mom[rows])

    def _trust(self, ix: slice | np.ndarray, change: np.ndarray) -> np.ndarray:
        """Regress each stream's scaled change on each seasonal change that preceded it (online);
        returns the new moments.

        Both moments start at zero and move at the same rate, so their ratio needs no warm-up.
        """
        s_ok, mom = self.s_ok[ix], self.s_mom[ix]
        known = np.count_nonzero(s_ok)
        if not known:  # nothing to learn from: a zero rate leaves the moments as they are
            return mom
        s = self.s_prev[ix]
        d = np.empty_like(mom)  # (s * s, s * change) - mom, then rate * that + mom
        np.multiply(s, s, out=d[:, :, 0])
        np.multiply(s, change[:, None, :], out=d[:, :, 1])
        d -= mom
        d *= _TRUST_RATE if known == s_ok.size else (s_ok * _TRUST_RATE)[:, :, None, None]
        d += mom
        self.s_mom[ix] = d
        return d

    def _fill(
        self,
        ix: slice | np.ndarray,
        base: np.ndarray,
        j: np.ndarray,
        s: np.ndarray,
        on: np.ndarray,
        ys: np.ndarray,
    ) -> None:
        """Put the points into the slots j of season number + 1 s, folding each slot they finish
        (the point is in another one) into its season's profile. An off season never pends,
        so never folds."""
        n, slot_j, season = self.pend_n[ix], self.pend_slot[ix], self.pend_s[ix]
        done = j != slot_j
        done |= s != season
        done &= n > _I0
        finished = np.count_nonzero(done)
        if finished:
            new = self.pend[ix] / np.maximum(n, _I1)[:, :, None]
            self._fold(base + slot_j, new, season, done, finished)
        if finished == done.size:  # every slot restarts with its first point
            self.pend[ix], self.pend_n[ix] = ys[:, None, :] + _F0, 1
        elif finished:
            fresh = done[:, :, None]
            self.pend[ix] = np.where(fresh, _F0, self.pend[ix]) + ys[:, None, :] * on[:, :, None]
            self.pend_n[ix] = np.where(done, _I0, n) + on
        else:
            self.pend[ix] += ys[:, None, :] * on[:, :, None]
            self.pend_n[ix] += on
        self.pend_slot[ix], self.pend_s[ix] = j, s

    def _fold(
        self, at: np.ndarray, new: np.ndarray, season: np.ndarray, done: np.ndarray, finished: int
    ) -> None:
        """Fold the finished slots' means `new` into the profile slots at flat positions `at`."""
        cells = self._cells(at)
        old, old_s = self._ring[cells], self._ring_s[at]
        fold = new - old  # old + PROFILE_RATE * (new - old)
        fold *= _PROFILE_RATE
        fold += old
        stale = old_s != season - _I1
        if np.count_nonzero(stale):  # a slot more than a season old starts over
            np.copyto(fold, new, where=stale[:, :, None])
        if finished < done.size:  # the unfinished ones write their slot back unchanged
            np.copyto(fold, old, where=~done[:, :, None])
            season = np.where(done, season, old_s)
        self._ring[cells], self._ring_s[at] = fold, season

    # ---- inputs ----------------------------------------------------------------------------

    def _local(self, ts: np.ndarray) -> np.ndarray:
        return ts + (utc_offset(ts, self.tz) if self.offset is None else self.offset)

    def _out(self, ix: slice | np.ndarray, ts: np.ndarray, seasonal: np.ndarray | None) -> np.ndarray:
        """The inputs (B, n_inputs): calendar, then the seasonal ones (B, S, size) if any."""
        if not self.n_calendar:
            return seasonal.reshape(len(ts), -1)
        out = np.empty((len(ts), self.n_inputs))
        out[:, :4] = calendar(self._local(ts + self.dt[ix])) * self.cal[ix, None]
        if self.S:
            out[:, 4:] = seasonal.reshape(len(ts), -1)
        return out

    def features(self, rows: np.ndarray, ts: np.ndarray, std: np.ndarray) -> np.ndarray:
        """The calendar and seasonal inputs (B, n_inputs) for points at ts; reads state only."""
        ix = contiguous(rows)
        return self._out(ix, ts, self.changes(rows, ts, std)[0] * self.gain(ix) if self.S else None)

    def changes(self, rows: np.ndarray, ts: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The seasonal changes (B, S, size) for points at ts before their gain, and where each is
        known (B, S); reads state only."""
        ix = contiguous(rows)
        j, season, top, _ = self._phase(ix, self._local(ts))
        p, p_next, ok = self._read(self._base(rows), j, season, top)
        return self._seasonal(ix, p, p_next, ok, std), ok

    def inputs(
        self,
        rows: np.ndarray,
        ys: np.ndarray,
        prev: np.ndarray,
        ts: np.ndarray,
        std: np.ndarray,
        n: np.ndarray,
    ) -> np.ndarray:
        """Take in the points (ys at ts, after prev; n points seen before) and return their inputs."""
        self._clock(rows, ts, n)
        ix = contiguous(rows)
        if not self.S:
            return self._out(ix, ts, None)
        if not np.count_nonzero(self.period[ix]):
            # no season on (yet): the inputs are zero, and an off season's ring, pending slot and
            # moments never change (only its unused pending season number would)
            zeros = np.zeros((len(ts), self.n_season))
            return self._out(ix, ts, zeros) if self.n_calendar else zeros
        j, season, top, on = self._phase(ix, self._local(ts))
        s = season + _I1
        mom = self._trust(ix, (ys - prev) / std)
        base = self._base(rows)
        self._fill(ix, base, j, s, on, ys)
        p, p_next, ok = self._read(base, j, season, top)
        seasonal = self._seasonal(ix, p, p_next, ok, std)
        self.s_prev[ix], self.s_ok[ix] = seasonal, ok
        return self._out(ix, ts, seasonal * _gain(mom))

    def describe(self, row: int) -> dict:
        """What was detected for a stream: interval, seasons, and whether it gets the calendar."""
        on = [k for k in range(self.S) if self.period[row, k] > 0]
        gain = self.gain(np.array([row]))[0]
        return {
            "interval": float(self.dt[row]) if self.dt[row] > 0 else None,
            "seasons": [float(self.period[row, k]) for k in on],
            "season_slots": [int(self.slots[row, k]) for k in on],
            "season_gain": [round(float(gain[k].max()), 3) for k in on],
            "calendar": bool(self.cal[row]),
        }
