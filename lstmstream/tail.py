"""`lstmstream tail`: one line per forecast, live, human-readable or JSON."""

from __future__ import annotations

import json
from typing import TextIO

from .record import is_forecast, listen
from .secure import ClientKeys

ALERT = 4.0  # scores at or above this are marked


def _num(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:.4g}" for x in v) + "]"
    return f"{v:.4g}"


def alert(record: dict) -> bool:
    """Whether a forecast's anomaly score is high enough to be marked."""
    score = record.get("score")
    return score is not None and score >= ALERT


def line(key: str, record: dict) -> str:
    """`key  t=…  v=…  [lo .. hi]  err=…  score=…  n=…`, with `!` for a high anomaly score."""
    mark = "  !" if alert(record) else ""
    return (
        f"{key}  t={record['t']}  v={_num(record['v'])}  [{_num(record['lo'])} .. {_num(record['hi'])}]"
        f"  err={_num(record['err'])}  score={_num(record.get('score'))}  n={record['n']}{mark}"
    )


def stats_line(key: str, stats: dict) -> str:
    return key + "  " + "  ".join(f"{k}={v}" for k, v in stats.items())


def tail(
    spec: str,
    prefix: str,
    out: TextIO,
    as_json: bool = False,
    count: int | None = None,
    curve: ClientKeys | None = None,
) -> int:
    """Print what arrives under `prefix` until interrupted (or `count` forecasts); returns the count."""
    seen = 0
    for key, payload in listen(spec, prefix, curve=curve):
        if not isinstance(payload, dict):
            continue
        if as_json:
            print(json.dumps({"key": key, **payload}), file=out, flush=True)
        else:
            print(
                line(key, payload) if is_forecast(payload) else stats_line(key, payload), file=out, flush=True
            )
        seen += is_forecast(payload)
        if count is not None and seen >= count:
            break
    return seen
