import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from support import SMALL, read_rows, run_cli

from lstmstream.evaluate import evaluate
from lstmstream.learner import Forecaster, Settings

FIELDS = ["key", "t", "v", "lo", "hi", "err", "score", "n"]


def sine(n: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return (50 + 10 * np.sin(np.arange(n) / 3.0) + rng.standard_normal(n)).tolist()


def write_nab(path, values, start=datetime(2024, 1, 1, tzinfo=UTC), step=timedelta(minutes=5)):
    with open(path, "w") as f:
        f.write("timestamp,value\n")
        for i, v in enumerate(values):
            f.write(f"{(start + i * step).strftime('%Y-%m-%d %H:%M:%S')},{v!r}\n")


def test_eval_writes_one_forecast_row_per_point_and_a_json_line(tmp_path):
    values = sine(120)
    write_nab(tmp_path / "room.csv", values)
    out = tmp_path / "f.csv"
    r = run_cli(
        "eval", str(tmp_path / "room.csv"), *SMALL, "--warmup", "10", "--forecasts", str(out), "--json"
    )
    assert r.returncode == 0, r.stderr
    rows = read_rows(out)
    assert list(rows[0]) == FIELDS
    assert len(rows) == 120
    assert [int(r["n"]) for r in rows] == list(range(1, 121))
    assert {r["key"] for r in rows} == {"room"}
    assert rows[0]["err"] == "" and rows[0]["score"] == ""
    t0 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    assert [float(r["t"]) for r in rows[:3]] == [t0, t0 + 300, t0 + 600]
    for prev, row, y in zip(rows, rows[1:], values[1:], strict=False):
        assert float(row["err"]) == pytest.approx(y - float(prev["v"]), rel=1e-9, abs=1e-9)
        assert float(row["lo"]) <= float(row["v"]) <= float(row["hi"])
    result = json.loads(r.stdout.strip().splitlines()[-1])
    s = result["streams"]["room"]
    assert s["points"] == 120 and s["scored"] == 110
    errs = np.array([float(r["err"]) for r in rows[10:]])
    assert s["mae"] == pytest.approx(np.abs(errs).mean())
    assert s["rmse"] == pytest.approx(math.sqrt((errs**2).mean()))
    naive = np.diff(values)[9:]
    assert s["naive_mae"] == pytest.approx(np.abs(naive).mean())
    assert s["ratio"] == pytest.approx(s["mae"] / s["naive_mae"])
    assert 0 <= s["coverage"] <= 1 and s["us_per_point"] > 0
    assert result["overall"]["gmean_ratio"] == pytest.approx(s["ratio"])
    assert result["settings"]["hidden"] == 8
    table = r.stdout.splitlines()
    assert table[0].split()[:3] == ["stream", "points", "MAE"]
    assert table[1].split()[:2] == ["room", "120"]


def test_eval_forecasts_are_the_learners_own(tmp_path):
    values = sine(40)
    write_nab(tmp_path / "x.csv", values)
    result_file = tmp_path / "f.csv"
    with open(result_file, "w") as f:
        evaluate([str(tmp_path / "x.csv")], Settings(hidden=8, window=4), forecasts=f)
    model = Forecaster(hidden_size=8, window=4, key="x")
    rows = read_rows(result_file)
    for row, y in zip(rows, values, strict=True):
        model.learn_one(float(y), float(row["t"]))
        assert float(row["v"]) == model.forecast()[0]


def test_key_t_v_files_many_streams_and_vectors_in_rounds(tmp_path):
    """Interleaved streams (one a vector) give the same forecasts as each stream evaluated alone."""
    a, b = sine(60, 1), sine(45, 2)
    with open(tmp_path / "mixed.csv", "w") as f:
        f.write("key,t,v\n")
        for i in range(60):
            f.write(f"a,{i},{a[i]!r}\n")
            f.write(f"vec,{i},{a[i]!r};{-a[i]!r}\n")
            if i < 45:
                f.write(f"b,{1000 + i},{b[i]!r}\n")
    with open(tmp_path / "b.csv", "w") as f:
        f.write("key,t,v\n" + "".join(f"b,{1000 + i},{b[i]!r}\n" for i in range(45)))
    r = run_cli(
        "eval",
        str(tmp_path / "mixed.csv"),
        *SMALL,
        "--warmup",
        "5",
        "--json",
        "--forecasts",
        str(tmp_path / "mixed.out"),
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.splitlines()[-1])
    assert {k: v["points"] for k, v in result["streams"].items()} == {"a": 60, "vec": 60, "b": 45}
    assert result["streams"]["vec"]["size"] == 2
    assert result["overall"]["points"] == 165
    rows = read_rows(tmp_path / "mixed.out")
    assert len(rows) == 165
    assert all(len(r["v"].split(";")) == 2 for r in rows if r["key"] == "vec")
    alone = run_cli("eval", str(tmp_path / "b.csv"), *SMALL, "--forecasts", str(tmp_path / "b.out"))
    assert alone.returncode == 0, alone.stderr
    mixed_b = [float(r["v"]) for r in rows if r["key"] == "b"]
    alone_b = [float(r["v"]) for r in read_rows(tmp_path / "b.out")]
    np.testing.assert_allclose(mixed_b, alone_b, rtol=1e-12)


def test_bad_rows_are_reported_with_their_line_and_the_rest_is_evaluated(tmp_path):
    lines = ["timestamp,value"] + [f"2024-01-01 00:{i:02d}:00,{v!r}" for i, v in enumerate(sine(30))]
    lines[5] = "2024-01-01 00:04:00,warm"
    lines[9] = "2024-01-01 00:08:00,nan"
    lines[12] = "yesterday,1.0"
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    r = run_cli("eval", str(tmp_path / "bad.csv"), *SMALL, "--warmup", "0", "--json")
    assert r.returncode == 0, r.stderr
    for line in (6, 10, 13):
        assert f"bad.csv:{line}: skipped" in r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["streams"]["bad"]["points"] == 27


def test_a_repeated_timestamp_keeps_its_point(tmp_path):
    """Local-time recordings repeat stamps at a DST change; each row is still a measurement."""
    lines = ["timestamp,value"] + [f"2024-03-10 01:{i:02d}:00,{i}.5" for i in range(20)]
    lines += ["2024-03-10 01:19:00,7.0", "2024-03-10 03:00:00,8.0"]
    (tmp_path / "dst.csv").write_text("\n".join(lines) + "\n")
    r = run_cli("eval", str(tmp_path / "dst.csv"), *SMALL, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["streams"]["dst"]["points"] == 22


def test_eval_refuses_a_file_without_a_known_header(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    r = run_cli("eval", str(tmp_path / "x.csv"))
    assert r.returncode != 0
    assert "header" in r.stderr


def test_eval_refuses_no_points_and_a_stream_split_over_two_files(tmp_path):
    (tmp_path / "empty.csv").write_text("timestamp,value\n")
    r = run_cli("eval", str(tmp_path / "empty.csv"))
    assert r.returncode == 1
    assert "no points to evaluate" in r.stderr
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("key,t,v\nroom,1,2.5\n")
    r = run_cli("eval", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"))
    assert r.returncode == 1
    assert "'room' is in both" in r.stderr


def test_plot_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    write_nab(tmp_path / "p.csv", sine(80))
    r = run_cli("eval", str(tmp_path / "p.csv"), *SMALL, "--plot", str(tmp_path / "p.png"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
