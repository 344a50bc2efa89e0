"""Wire protocol v1: points in, forecasts and stats out, as two-frame ZeroMQ messages.

Points in:  [key, payload]  key UTF-8, 1..256 bytes, not starting with "$" (reserved);
            payload a msgpack map {"t": number, "v": number | [numbers]} or an array of such
            maps (a batch for that key, processed in order). Other map fields are ignored.
Out:        [key, msgpack map {"t", "v", "lo", "hi", "err", "score", "n"}] per learned point,
            and ["$stats", map of counters] every few seconds.

Decoding never raises past `Rejected`: anything malformed becomes a reason from `Reason`.
Rules that need a stream's history (t increasing, v's length, the stream limit) are the
daemon's; this module checks one message on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

import msgpack

MAX_KEY = 256
MAX_BATCH = 4096  # elements of any msgpack array: points in a batch, values in a vector
MAX_MAP = 16
MAX_STR = 256
STATS_KEY = "$stats"


class Reason(StrEnum):
    """Why a message or point was rejected; the names appear in logs and in $stats."""

    FRAMES = "frames"  # not exactly two frames
    KEY = "key"  # key not UTF-8, empty, longer than 256 bytes, or reserved ("$...")
    MSGPACK = "msgpack"  # payload not msgpack, truncated, trailing bytes, or past a size limit
    NOT_MAP = "not_map"  # payload (or a batch element) is not a map
    T = "t"  # t missing or not a number (bools are not numbers)
    V = "v"  # v missing, not a number, a string, a bool, an empty or nested list
    NONFINITE = "nonfinite"  # t or a value is NaN or ±inf
    LATE = "late"  # t not strictly after the stream's last t (late or duplicate)
    SIZE = "size"  # v's length differs from the stream's
    STREAMS = "max_streams"  # a new key past --max-streams


class Rejected(Exception):
    def __init__(self, reason: Reason, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Point(NamedTuple):  # a tuple: built in a third of a frozen dataclass's time, per point
    t: float
    v: tuple[float, ...]


_PLAIN = (float, int)


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


@lru_cache(maxsize=1 << 16)  # a feed repeats its keys: one dict lookup instead of the checks
def decode_key(frame: bytes) -> str:
    if not 1 <= len(frame) <= MAX_KEY:
        raise Rejected(Reason.KEY, f"key of {len(frame)} bytes (1..{MAX_KEY})")
    try:
        key = frame.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(Reason.KEY, "key is not UTF-8") from None
    if key.startswith("$"):
        raise Rejected(Reason.KEY, f"key {key!r}: '$' keys are reserved")
    return key


def unpack(payload: bytes) -> object:
    """msgpack with explicit limits: no bin/ext types, short strings, bounded arrays and maps."""
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_STR,
            max_bin_len=0,
            max_ext_len=0,
            max_array_len=MAX_BATCH,
            max_map_len=MAX_MAP,
        )
    except (ValueError, msgpack.UnpackException) as e:  # ExtraData, FormatError, StackError too
        raise Rejected(Reason.MSGPACK, f"{type(e).__name__}: {e}") from None


def decode_point(obj: object) -> Point:
    """One {"t", "v"} map as a Point; raises Rejected."""
    if type(obj) is dict:  # the common case first: a finite number for t and for v (never a bool)
        t, v = obj.get("t"), obj.get("v")
        if type(t) in _PLAIN and type(v) in _PLAIN and math.isfinite(t) and math.isfinite(v):
            return Point(float(t), (float(v),))
    if not isinstance(obj, dict):
        raise Rejected(Reason.NOT_MAP, f"expected a map, got {type(obj).__name__}")
    t, v = obj.get("t"), obj.get("v")
    if not _number(t):
        raise Rejected(Reason.T, f"t must be a number, got {type(t).__name__}")
    values = v if isinstance(v, list) else [v]
    if not values or not all(_number(x) for x in values):
        raise Rejected(Reason.V, f"v must be a number or a non-empty list of numbers, got {v!r:.60}")
    vs = tuple(float(x) for x in values)
    if not (math.isfinite(t) and all(math.isfinite(x) for x in vs)):
        raise Rejected(Reason.NONFINITE, f"t={t!r}, v={v!r:.60}")
    return Point(float(t), vs)


def decode(frames: list[bytes]) -> tuple[str, list[Point | Rejected]]:
    """A message's key and its points in order (bad batch elements as Rejected in place).

    Raises Rejected when the whole message is unusable (frames, key, msgpack, payload type).
    """
    if len(frames) != 2:
        raise Rejected(Reason.FRAMES, f"{len(frames)} frames (expected 2: key, payload)")
    key = decode_key(frames[0])
    obj = unpack(frames[1])
    items = obj if isinstance(obj, list) else [obj]
    out: list[Point | Rejected] = []
    for item in items:
        try:
            out.append(decode_point(item))
        except Rejected as r:
            out.append(r)
    return key, out


def encode(key: str, record: dict) -> list[bytes]:
    """A forecast record (or the stats map) as the two frames of an outgoing message."""
    return [key.encode(), msgpack.packb(record)]


def packer() -> Callable[[dict], bytes]:
    """The payload half of `encode` for a sender of many records: packb builds a Packer per
    call, this reuses one (about half the time). One per thread: a Packer is not shared."""
    return msgpack.Packer().pack


def encode_point(key: str, t: float, v: float | list[float]) -> list[bytes]:
    return encode(key, {"t": t, "v": v})
