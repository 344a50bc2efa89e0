"""The `lstmstream` command line: one click group, one subcommand per job."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lstmstream")
def main() -> None:
    """Online LSTM forecasts for streams of numbers, over ZeroMQ."""
