"""The model's command-line options, shared by every command that learns (`eval`, `fit`, `run`).

    @main.command()
    @model_options
    def run(settings: Settings, ...): ...

adds --hidden, --window, --lr, ... to a command and hands it one `Settings` instead, so every
command spells the options, their defaults and their help the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import click

from .learner import Settings

D = Settings()


def _option(decl: str, help: str, type=None) -> Callable:
    """A model option defaulting to the `Settings` field it is named after (--season-slots: season_slots)."""
    name = decl.split("/")[0].removeprefix("--").replace("-", "_")
    return click.option(decl, type=type, default=getattr(D, name), show_default=True, help=help)


OPTIONS = (
    _option("--hidden", "LSTM hidden units.", click.IntRange(1)),
    _option("--window", "Points in the truncated-BPTT window.", click.IntRange(1)),
    _option("--lr", "Adam learning rate.", click.FloatRange(0, min_open=True)),
    _option("--seed", "Weight seed (hashed with each stream's key).", int),
    _option("--clip", "Gradient norm clip.", click.FloatRange(0, min_open=True)),
    _option("--forget", "Scaler forgetting weight (0: plain running mean and std).", click.FloatRange(0, 1)),
    _option("--residual/--level", "Predict the change over the last value, or the level."),
    _option(
        "--interval", "Nominal coverage of lo..hi.", click.FloatRange(0, 1, min_open=True, max_open=True)
    ),
    _option("--dtype", "Floating-point type of the model.", click.Choice(["float64", "float32"])),
    _option(
        "--calendar",
        "Time-of-day and day-of-week inputs (auto: for epoch-second times sampled under a day).",
        click.Choice(["auto", "on", "off"]),
    ),
    _option("--tz", "Time zone of the calendar and the season: UTC, +HH:MM or an IANA name."),
    _option(
        "--season", "Seasonal inputs: auto (a day and a week), off, or points/durations like 288 or 1d,1w."
    ),
    _option(
        "--season-slots",
        "Resolution of a duration season's ring (values kept per stream).",
        click.IntRange(2),
    ),
)
NAMES = tuple(D.to_dict())


def model_options(command: Callable) -> Callable:
    """Add the model options to a click command, which receives them as `settings: Settings`."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        settings = Settings(**{n: kwargs.pop(n) for n in NAMES})
        return command(*args, settings=settings, **kwargs)

    for option in reversed(OPTIONS):
        wrapper = option(wrapper)
    return wrapper
