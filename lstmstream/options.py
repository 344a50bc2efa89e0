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

OPTIONS = (
    click.option(
        "--hidden", type=click.IntRange(1), default=D.hidden, show_default=True, help="LSTM hidden units."
    ),
    click.option(
        "--window",
        type=click.IntRange(1),
        default=D.window,
        show_default=True,
        help="Points in the truncated-BPTT window.",
    ),
    click.option(
        "--lr",
        type=click.FloatRange(0, min_open=True),
        default=D.lr,
        show_default=True,
        help="Adam learning rate.",
    ),
    click.option(
        "--seed",
        type=int,
        default=D.seed,
        show_default=True,
        help="Weight seed (hashed with each stream's key).",
    ),
    click.option(
        "--clip",
        type=click.FloatRange(0, min_open=True),
        default=D.clip,
        show_default=True,
        help="Gradient norm clip.",
    ),
    click.option(
        "--forget",
        type=click.FloatRange(0, 1),
        default=D.forget,
        show_default=True,
        help="Scaler forgetting weight (0: plain running mean and std).",
    ),
    click.option(
        "--residual/--level",
        default=D.residual,
        show_default=True,
        help="Predict the change over the last value, or the level.",
    ),
    click.option(
        "--interval",
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        default=D.interval,
        show_default=True,
        help="Nominal coverage of lo..hi.",
    ),
    click.option(
        "--dtype",
        type=click.Choice(["float64", "float32"]),
        default=D.dtype,
        show_default=True,
        help="Floating-point type of the model.",
    ),
    click.option(
        "--calendar",
        type=click.Choice(["auto", "on", "off"]),
        default=D.calendar,
        show_default=True,
        help="Time-of-day and day-of-week inputs (auto: for epoch-second times sampled under a day).",
    ),
    click.option(
        "--tz",
        default=D.tz,
        show_default=True,
        help="Time zone of the calendar and the season: UTC, +HH:MM or an IANA name.",
    ),
    click.option(
        "--season",
        default=D.season,
        show_default=True,
        help="Seasonal inputs: auto (a day and a week), off, or points/durations like 288 or 1d,1w.",
    ),
    click.option(
        "--season-slots",
        type=click.IntRange(2),
        default=D.season_slots,
        show_default=True,
        help="Resolution of a duration season's ring (values kept per stream).",
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
