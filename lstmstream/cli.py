"""The `lstmstream` command line: one click group, one subcommand per job."""

from __future__ import annotations

import sys

import click

from . import __version__
from .config import Config as DaemonConfig
from .learner import Settings
from .options import model_options
from .secure import client_options

RUN = DaemonConfig()  # the daemon's defaults, shown by `run --help`; config.py holds them


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lstmstream")
def main() -> None:
    """Online LSTM forecasts for streams of numbers, over ZeroMQ."""


@main.command("eval")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@model_options
@click.option(
    "--warmup",
    type=click.IntRange(0),
    default=50,
    show_default=True,
    help="Points per stream learned but not scored.",
)
@click.option("--forecasts", type=click.File("w"), help="Write key,t,v,lo,hi,err,score,n rows here.")
@click.option("--json", "as_json", is_flag=True, help="End the output with one line of JSON.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw actual vs forecast to this PNG.")
def eval_command(files, settings: Settings, warmup, forecasts, as_json, plot) -> None:
    """Prequential (test-then-train) evaluation on CSV files (timestamp,value or key,t,v)."""
    from .evaluate import run_eval

    run_eval(list(files), settings, warmup, forecasts, as_json, plot)


@main.command("fit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@model_options
@click.option(
    "--epochs", type=click.IntRange(1), default=5, show_default=True, help="Passes over the windows."
)
@click.option("--batch", type=click.IntRange(1), default=64, show_default=True, help="Windows per step.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="The model file (.npz) to write.")
def fit_command(file, settings: Settings, epochs, batch, out) -> None:
    """Train warm-start weights offline on a history (windows, epochs) for `run --init`."""
    from .fit import run_fit

    try:
        run_fit(file, settings, epochs, batch, out, log=click.echo)
    except ValueError as e:
        raise click.ClickException(str(e)) from e


@main.command("run")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A TOML file of options (command line > LSTMSTREAM_* env > file > defaults).",
)
@click.option(
    "--sub",
    multiple=True,
    default=RUN.sub,
    show_default=True,
    help="Where points come in (repeatable); @ binds, > connects, bare connects.",
)
@click.option(
    "--pub",
    default=RUN.pub,
    show_default=True,
    help="Where forecasts go out; @ binds, > connects, bare binds.",
)
@click.option("--state-dir", type=click.Path(file_okay=False), help="Directory for the streams' state.")
@click.option(
    "--checkpoint-every",
    type=click.FloatRange(0, min_open=True),
    default=RUN.checkpoint_every,
    show_default=True,
    help="Seconds between checkpoints to --state-dir (one is also written on SIGTERM/SIGINT).",
)
@click.option(
    "--init",
    type=click.Path(exists=True, dir_okay=False),
    help="Warm-start weights (from `lstmstream fit`) that new streams start from.",
)
@model_options
@click.option(
    "--max-streams",
    type=click.IntRange(1),
    default=RUN.max_streams,
    show_default=True,
    help="New keys past this many streams are rejected.",
)
@click.option(
    "--forget-after",
    type=click.FloatRange(0),
    default=RUN.forget_after,
    show_default=True,
    help="Seconds without an accepted point after which a stream is dropped (0: never).",
)
@click.option(
    "--stats-every",
    type=click.FloatRange(0, min_open=True),
    default=RUN.stats_every,
    show_default=True,
    help="Seconds between $stats messages.",
)
@click.option(
    "--max-msg-size",
    type=click.IntRange(1),
    default=RUN.max_msg_size,
    show_default=True,
    help="Bigger incoming messages are refused by ZeroMQ.",
)
@click.option(
    "--shard",
    default=RUN.shard,
    show_default=True,
    metavar="I/N",
    help="Serve only the keys whose stable hash falls in shard I of N (the rest are ignored).",
)
@click.option(
    "--curve-secret",
    type=click.Path(exists=True, dir_okay=False),
    help="The daemon's CURVE secret key (SERVER.key_secret, mode 0600); needs --curve-clients.",
)
@click.option(
    "--curve-clients",
    type=click.Path(exists=True, file_okay=False),
    help="Directory of admitted client public keys (*.key); reloaded on SIGHUP.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=RUN.log_level,
    show_default=True,
)
def run_command(config_file, settings: Settings, **options) -> None:
    """Serve: learn every stream that arrives on --sub, publish forecasts on --pub."""
    from .daemon import serve

    raise SystemExit(serve(click.get_current_context(), config_file, settings, options))


@main.command("replay")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--pub",
    default=">tcp://127.0.0.1:5555",
    show_default=True,
    help="The daemon's SUB endpoint; > connects, @ binds, bare connects.",
)
@click.option("--key", help="One stream key for every point (default: the key column, or the file's stem).")
@click.option("--rate", type=click.FloatRange(0, min_open=True), help="Points per second.")
@click.option(
    "--speed", type=click.FloatRange(0, min_open=True), help="Recorded time sped up this many times."
)
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=30.0,
    show_default=True,
    help="Give up after this many seconds without a subscriber or without progress.",
)
@client_options
def replay_command(files, pub, key, rate, speed, timeout, curve) -> None:
    """Send CSV points (timestamp,value or key,t,v; several files interleaved by time), losslessly."""
    from .replay import Stalled, load, replay

    if rate and speed:
        raise click.UsageError("--rate and --speed exclude each other")
    points = load(files, key)
    try:
        sent = replay(points, pub, rate, speed, timeout, progress=sys.stderr.isatty(), curve=curve)
    except Stalled as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"sent {sent} points", err=True)


@main.command("record")
@click.option(
    "--sub",
    default=">tcp://127.0.0.1:5556",
    show_default=True,
    help="A PUB endpoint (the daemon's, or the sensors'); > connects, @ binds.",
)
@click.option("--prefix", default="", help="Only keys starting with this.")
@click.option("-o", "--output", type=click.File("w"), default="-", help="CSV file (default stdout).")
@click.option("--count", type=click.IntRange(1), help="Stop after this many rows.")
@click.option("--duration", type=click.FloatRange(0, min_open=True), help="Stop after this many seconds.")
@client_options
def record_command(sub, prefix, output, count, duration, curve) -> None:
    """Write forecasts as key,t,v,lo,hi,err,score,n rows, or points as key,t,v rows."""
    from .record import record

    rec = record(sub, prefix, output, count, duration, curve)
    click.echo(f"recorded {rec.rows} {rec.kind or 'forecasts'}", err=True)


@main.command("tail")
@click.argument("prefix", default="")
@click.option("--sub", default=">tcp://127.0.0.1:5556", show_default=True, help="The daemon's PUB endpoint.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--count", type=click.IntRange(1), help="Stop after this many forecasts.")
@client_options
def tail_command(prefix, sub, as_json, count, curve) -> None:
    """Print forecasts live, one line each (`!` marks a high anomaly score)."""
    from .tail import tail

    tail(sub, prefix, sys.stdout, as_json, count, curve)


@main.command("demo")
@click.option(
    "--days", type=click.IntRange(3, 60), default=14, show_default=True, help="Days of sensor data."
)
def demo_command(days) -> None:
    """Start the daemon on loopback, replay a synthetic sensor feed, summarise the forecasts."""
    from .demo import demo

    try:
        demo(sys.stdout, days)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from e


@main.command("bench")
@click.option(
    "--streams", type=click.IntRange(1), default=1000, show_default=True, help="Streams learned at once."
)
@click.option("--hidden", type=click.IntRange(1), default=32, show_default=True, help="Hidden units H.")
@click.option("--window", type=click.IntRange(1), default=16, show_default=True, help="TBPTT window k.")
@click.option(
    "--points",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="Points per stream in each timed repeat.",
)
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option(
    "--recompute/--no-recompute",
    default=True,
    show_default=True,
    help="Rerun the window at each update (exact) or reuse the activations kept as points arrived.",
)
@click.option(
    "--repeat", type=click.IntRange(1), default=3, show_default=True, help="Best of this many runs."
)
@click.option("--json", "as_json", is_flag=True, help="End the output with one line of JSON.")
@click.option(
    "--e2e",
    is_flag=True,
    help="Through real sockets: the daemon in a subprocess, lossless replay, latency percentiles.",
)
@click.option(
    "--rate",
    type=click.FloatRange(0, min_open=True),
    default=1000.0,
    show_default=True,
    help="With --e2e: points/s offered while measuring latency.",
)
@click.option(
    "--duration",
    type=click.FloatRange(0, min_open=True),
    default=5.0,
    show_default=True,
    help="With --e2e: seconds of the latency measurement.",
)
def bench_command(as_json, e2e, rate, duration, **options) -> None:
    """Measure the learner on synthetic streams: points/s, µs/point, bytes/stream, sensors per core."""
    from .bench import Config, run_bench

    if e2e:
        from .loadtest import Load, run_e2e

        if not options["recompute"]:
            raise click.UsageError("--no-recompute is not a daemon option; drop it with --e2e")
        try:
            run_e2e(Config(**options), Load(rate, duration), as_json, echo=click.echo)
        except RuntimeError as e:
            raise click.ClickException(str(e)) from e
        return
    run_bench(Config(**options), as_json, echo=click.echo)


@main.command("proxy")
@click.option(
    "--frontend",
    default="@tcp://*:5555",
    show_default=True,
    help="Where sensors publish (XSUB); @ binds, > connects, bare binds.",
)
@click.option(
    "--backend",
    default="@tcp://*:5556",
    show_default=True,
    help="Where daemons subscribe (XPUB); @ binds, > connects, bare binds.",
)
def proxy_command(frontend, backend) -> None:
    """Forward points from many sensors to many daemons (ZeroMQ XSUB/XPUB), until SIGTERM."""
    import zmq

    from .proxy import serve

    try:
        code = serve(frontend, backend)
    except zmq.ZMQError as e:
        raise click.ClickException(f"proxy: {e}") from e
    raise SystemExit(code)


@main.command("keys")
@click.argument("target", metavar="PATH/NAME")
def keys_command(target) -> None:
    """Create a CURVE key pair: NAME.key (public) and NAME.key_secret (mode 0600), never overwriting."""
    from .curve import CurveError, issue

    try:
        click.echo(issue(target))
    except CurveError as e:
        raise click.ClickException(str(e)) from e
