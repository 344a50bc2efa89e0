import io
from datetime import UTC, datetime

import pytest

from lstmstream import csvio
from lstmstream.records import parse_value


def collect():
    errors = []
    return errors, lambda path, line, reason: errors.append((line, reason))


def test_nab_file_is_one_stream_keyed_by_its_stem_with_iso_times_as_epoch_seconds(tmp_path):
    p = tmp_path / "machine_temp.csv"
    p.write_text("timestamp,value\n2024-01-01 00:00:00,1.5\n2024-01-01T01:05:00+01:00,2\n")
    points = csvio.read_points(p)
    assert [pt.key for pt in points] == ["machine_temp"] * 2
    assert points[0].t == datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    assert points[1].t == points[0].t + 300
    assert [pt.v for pt in points] == [1.5, 2.0]
    assert [pt.line for pt in points] == [2, 3]


def test_key_t_v_file_interleaves_streams_and_vectors_and_ignores_extra_columns(tmp_path):
    p = tmp_path / "rec.csv"
    p.write_text("key,t,v,lo\na,1,1.0,0\nb,1,2;3,0\na,2,4.0,0\n")
    points = csvio.read_points(p)
    assert [(pt.key, pt.t, pt.v) for pt in points] == [
        ("a", 1.0, 1.0),
        ("b", 1.0, [2.0, 3.0]),
        ("a", 2.0, 4.0),
    ]


def test_bad_rows_are_reported_with_their_line_number_and_skipped(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("key,t,v\na,1,1\na,2,text\na,3,nan\na,3,inf\n,4,1\na,x,1\na,1,5\na,9\na,10,2\n")
    errors, on_error = collect()
    points = csvio.read_points(p, on_error=on_error)
    assert [(pt.t, pt.v) for pt in points] == [(1.0, 1.0), (10.0, 2.0)]
    assert [line for line, _ in errors] == [3, 4, 5, 6, 7, 8, 9]
    assert "does not increase" in errors[5][1]


def test_unordered_reading_keeps_repeated_times(tmp_path):
    p = tmp_path / "dst.csv"
    p.write_text("timestamp,value\n2024-03-10 03:00:00,1\n2024-03-10 03:00:00,2\n")
    errors, on_error = collect()
    assert len(csvio.read_points(p, on_error=on_error, ordered=False)) == 2 and not errors
    assert len(csvio.read_points(p, on_error=on_error)) == 1 and len(errors) == 1


def test_unknown_header_is_refused(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("time,reading\n1,2\n")
    with pytest.raises(ValueError, match="header"):
        csvio.read_points(p)


def test_merge_by_time_interleaves_files(tmp_path):
    (tmp_path / "a.csv").write_text("key,t,v\na,1,0\na,3,0\n")
    (tmp_path / "b.csv").write_text("key,t,v\nb,2,0\nb,4,0\n")
    merged = csvio.merge_by_time(csvio.read_points(tmp_path / f) for f in ("a.csv", "b.csv"))
    assert [(p.key, p.t) for p in merged] == [("a", 1), ("b", 2), ("a", 3), ("b", 4)]


def test_forecast_writer_rows_read_back_exactly():
    out = io.StringIO()
    w = csvio.ForecastWriter(out)
    rec = {"t": 5, "v": [0.1, 1 / 3], "lo": [0.0, 0.2], "hi": [0.2, 0.5], "err": None, "score": None, "n": 1}
    w.write("k", rec)
    header, row = out.getvalue().splitlines()
    assert header == "key,t,v,lo,hi,err,score,n"
    cells = row.split(",")
    assert cells[0] == "k" and cells[1] == "5" and cells[5:7] == ["", ""] and cells[7] == "1"
    assert parse_value(cells[2]) == [0.1, 1 / 3]
