"""Split a feed's keys between N daemons by a stable hash: shard i of N serves the keys it owns.

The hash is BLAKE2b of the key's UTF-8 bytes, never Python's salted hash(), so every process on
every host, today and after a restart, agrees on who owns a key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def shard_of(key: str | bytes, count: int) -> int:
    """The shard (0 .. count-1) that owns `key`."""
    data = key.encode() if isinstance(key, str) else key
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") % count


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`; `owns(key)` is memoised, so a foreign key costs a dict lookup."""

    index: int = 0
    count: int = 1
    _seen: dict = field(default_factory=dict, compare=False, repr=False)

    MEMO = 1 << 20  # keys remembered before the memo starts over

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= i < N")

    def owns(self, key: str | bytes) -> bool:
        mine = self._seen.get(key)
        if mine is None:
            if len(self._seen) >= self.MEMO:
                self._seen.clear()
            mine = self._seen[key] = self.count == 1 or shard_of(key, self.count) == self.index
        return mine

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse(spec: str) -> Shard:
    """'i/N' (e.g. '0/4') -> Shard; ValueError with the reason otherwise."""
    head, sep, tail = spec.strip().partition("/")
    try:
        if not sep:
            raise ValueError
        index, count = int(head), int(tail)
    except ValueError:
        raise ValueError(f"shard {spec!r}: expected i/N, e.g. 0/4") from None
    if count < 1:
        raise ValueError(f"shard {spec!r}: N must be at least 1")
    return Shard(index, count)
