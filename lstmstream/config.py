"""The daemon's configuration: command line > LSTMSTREAM_* environment > TOML file > defaults.

Every option is one field of `Config` (or of `learner.Settings` for the model), with the same
name everywhere: `--max-streams` on the command line, `LSTMSTREAM_MAX_STREAMS` in the
environment, `max_streams = ...` in the TOML file. Lists (`sub`) are TOML arrays, or comma
separated in the environment.

Endpoints follow CZMQ: `@tcp://...` binds, `>tcp://...` connects, and a bare endpoint takes the
socket's natural default (SUB connects, PUB binds).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from .learner import Settings
from .season import Clock
from .shard import parse as parse_shard

ENV_PREFIX = "LSTMSTREAM_"


@dataclass(frozen=True)
class Config:
    sub: tuple[str, ...] = ("@tcp://127.0.0.1:5555",)
    pub: str = "@tcp://127.0.0.1:5556"
    state_dir: str | None = None
    checkpoint_every: float = 30.0  # seconds between checkpoints to state_dir
    init: str | None = None  # warm-start weights (from `fit`) for new streams
    max_streams: int = 10_000
    forget_after: float = 0.0  # seconds without an accepted point before a stream is dropped; 0: never
    stats_every: float = 10.0
    max_msg_size: int = 65_536
    shard: str = "0/1"  # serve only the keys of shard i of N ("i/N", lstmstream/shard.py)
    curve_secret: str | None = None  # the daemon's CURVE secret key; needs curve_clients
    curve_clients: str | None = None  # directory of admitted client public keys (*.key)
    log_level: str = "info"
    settings: Settings = field(default_factory=Settings)


class ConfigError(ValueError):
    pass


def _is_shard(spec: str) -> bool:
    try:
        parse_shard(spec)
    except ValueError:
        return False
    return True


RULES = {  # what the command line's option types check, for values from the env or a file
    "hidden": (lambda x: x >= 1, ">= 1"),
    "window": (lambda x: x >= 1, ">= 1"),
    "lr": (lambda x: x > 0, "> 0"),
    "clip": (lambda x: x > 0, "> 0"),
    "forget": (lambda x: 0 <= x <= 1, "in [0, 1]"),
    "interval": (lambda x: 0 < x < 1, "in (0, 1)"),
    "dtype": (lambda x: x in ("float32", "float64"), "float32 or float64"),
    "season_slots": (lambda x: x >= 1, ">= 1"),
    "max_streams": (lambda x: x >= 1, ">= 1"),
    "forget_after": (lambda x: x >= 0, ">= 0"),
    "stats_every": (lambda x: x > 0, "> 0"),
    "checkpoint_every": (lambda x: x > 0, "> 0"),
    "max_msg_size": (lambda x: x >= 1, ">= 1"),
    "log_level": (
        lambda x: x.lower() in ("debug", "info", "warning", "error"),
        "debug, info, warning or error",
    ),
    "sub": (lambda x: len(x) >= 1, "at least one endpoint"),
    "shard": (_is_shard, "i/N with 0 <= i < N, e.g. 0/4"),
}


def _defaults() -> dict[str, Any]:
    """Every option name with its default, the model's fields included."""
    out = {f.name: f.default for f in dataclasses.fields(Config) if f.name != "settings"}
    out.update(Settings().to_dict())
    return out


def _coerce(name: str, value: Any, default: Any) -> Any:
    """`value` (from TOML, env text or click) as the type of the option's default."""
    try:
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(x).strip() for x in items if str(x).strip())
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        return None if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot use {value!r} (expected {type(default).__name__})") from None


def from_file(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None


def from_env(env: Mapping[str, str]) -> dict[str, Any]:
    return {name: env[ENV_PREFIX + name.upper()] for name in _defaults() if ENV_PREFIX + name.upper() in env}


def load(
    cli: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None, path: str | Path | None = None
) -> Config:
    """Merge the layers (later wins): defaults, file, environment, command line."""
    defaults = _defaults()
    merged = dict(defaults)
    layers = (from_file(path) if path else {}, from_env(os.environ if env is None else env), cli or {})
    for layer in layers:
        unknown = set(layer) - set(defaults)
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
        merged.update({n: _coerce(n, v, defaults[n]) for n, v in layer.items()})
    for name, (ok, rule) in RULES.items():
        if not ok(merged[name]):
            raise ConfigError(f"{name}: {merged[name]!r} is not {rule}")
    model = Settings(**{n: merged.pop(n) for n in Settings().to_dict()})
    try:  # calendar, tz and season are checked where they are parsed, for every layer alike
        Clock(model.calendar, model.tz, model.season, model.season_slots, size=1)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return Config(**merged, settings=model)


def given(ctx: click.Context, values: Mapping[str, Any]) -> dict[str, Any]:
    """The `values` of the parameters that were set on the command line (not click defaults)."""
    return {n: v for n, v in values.items() if ctx.get_parameter_source(n) is ParameterSource.COMMANDLINE}


def endpoint(spec: str, natural: str) -> tuple[str, str]:
    """('bind' | 'connect', address) for a CZMQ-style endpoint; `natural` for a bare one."""
    if spec.startswith("@"):
        return "bind", spec[1:]
    if spec.startswith(">"):
        return "connect", spec[1:]
    return natural, spec
