import click
import pytest
from click.testing import CliRunner

from lstmstream.config import Config, ConfigError, endpoint, given, load
from lstmstream.learner import Settings


def test_defaults_are_loopback_and_the_learner_defaults():
    c = load(env={})
    assert c == Config()
    assert c.sub == ("@tcp://127.0.0.1:5555",) and c.pub == "@tcp://127.0.0.1:5556"
    assert c.settings == Settings() and c.max_streams == 10_000


def test_precedence_cli_over_env_over_file(tmp_path):
    f = tmp_path / "svc.toml"
    f.write_text(
        'sub = ["@ipc:///run/a", ">tcp://10.0.0.1:5555"]\npub = "@ipc:///run/b"\n'
        "hidden = 8\nwindow = 4\nmax_streams = 50\nresidual = false\n"
    )
    env = {
        "LSTMSTREAM_HIDDEN": "12",
        "LSTMSTREAM_STATS_EVERY": "2.5",
        "LSTMSTREAM_SUB": "@ipc:///x, >ipc:///y",
        "OTHER": "1",
    }
    c = load({"hidden": 16}, env=env, path=f)
    assert c.settings.hidden == 16  # cli
    assert c.stats_every == 2.5 and c.sub == ("@ipc:///x", ">ipc:///y")  # env
    assert c.settings.window == 4 and c.max_streams == 50 and c.settings.residual is False  # file
    assert c.pub == "@ipc:///run/b" and c.settings.lr == Settings.lr  # file, default


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"LSTMSTREAM_HIDDEN": "many"}, "hidden"),
        ({"LSTMSTREAM_RESIDUAL": "maybe"}, "residual"),
        ({"LSTMSTREAM_MAX_STREAMS": "1.5"}, "max_streams"),
        ({"LSTMSTREAM_INTERVAL": "1.5"}, "interval"),
        ({"LSTMSTREAM_HIDDEN": "0"}, "hidden"),
        ({"LSTMSTREAM_SUB": " , "}, "sub"),
    ],
)
def test_bad_env_values_name_the_option(layer, message):
    with pytest.raises(ConfigError, match=message):
        load(env=layer)


def test_file_errors_are_clear(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("hiden = 8\n")
    with pytest.raises(ConfigError, match=r"unknown option.*hiden"):
        load(env={}, path=f)
    f.write_text("hidden = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load(env={}, path=f)


def test_czmq_endpoints():
    assert endpoint("@tcp://*:5555", "connect") == ("bind", "tcp://*:5555")
    assert endpoint(">tcp://h:5555", "bind") == ("connect", "tcp://h:5555")
    assert endpoint("ipc:///tmp/x", "connect") == ("connect", "ipc:///tmp/x")
    assert endpoint("ipc:///tmp/x", "bind") == ("bind", "ipc:///tmp/x")


def test_only_options_typed_on_the_command_line_count_as_given():
    @click.command()
    @click.option("--hidden", type=int, default=32)
    @click.option("--pub", default="@tcp://127.0.0.1:5556")
    def cmd(**values):
        click.echo(sorted(given(click.get_current_context(), values).items()))

    out = CliRunner().invoke(cmd, ["--hidden", "32"]).output
    assert out.strip() == "[('hidden', 32)]"


@pytest.mark.parametrize(
    "layer, message",
    [
        ({"LSTMSTREAM_CALENDAR": "zzz"}, r"calendar 'zzz'"),
        ({"LSTMSTREAM_TZ": "Mars/Olympus"}, r"time zone 'Mars/Olympus'"),
        ({"LSTMSTREAM_SEASON": "often"}, r"often"),
        ({"LSTMSTREAM_SEASON_SLOTS": "0"}, r"season_slots"),
    ],
)
def test_calendar_and_season_from_env_or_file_are_checked_at_start(layer, message):
    with pytest.raises(ConfigError, match=message):
        load(env=layer)
