import json
import subprocess

from support import CLI


def test_bench_json_reports_speed_and_memory():
    cmd = [
        *CLI,
        "bench",
        "--streams",
        "3",
        "--hidden",
        "4",
        "--window",
        "3",
        "--points",
        "2",
        "--repeat",
        "1",
        "--dtype",
        "float64",
        "--json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    assert res["points_per_s"] > 0 and res["us_per_point"] > 0
    assert abs(res["points_per_s"] * res["us_per_point"] - 1e6) < 1e-3 * 1e6
    # w (4*4*(2+1+4) + (1+4)) plus Adam's m and v, as float64, is most of a stream's state
    assert res["bytes_per_stream"] > 3 * 8 * (4 * 4 * 7 + 5)
    assert "sensors at 1 Hz" in out and res["streams"] == 3 and res["dtype"] == "float64"
