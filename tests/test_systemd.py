import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

UNIT = Path(__file__).parent.parent / "systemd" / "lstmstream@.service"
PROXY = UNIT.with_name("lstmstream-proxy.service")
UNITS = {UNIT: "lstmstream@example.service", PROXY: PROXY.name}  # file -> the unit name to verify
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
MAX_EXPOSURE = 1.5


def unit_lines(unit: Path = UNIT) -> dict[str, list[str]]:
    """Directive name -> values, from a unit file (comments skipped)."""
    out: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, value = line.split("=", 1)
            out.setdefault(name.strip(), []).append(value.strip())
    return out


def test_the_unit_runs_one_instance_per_service_definition():
    d = unit_lines()
    assert d["ExecStart"] == ["/opt/lstmstream/bin/lstmstream run --config /etc/lstmstream/%i.toml"]
    assert d["Type"] == ["notify"]
    assert d["Restart"] == ["on-failure"]
    assert d["StateDirectory"] == ["lstmstream/%i"]
    assert d["DynamicUser"] == ["yes"]
    assert int(d["WatchdogSec"][0]) > 0
    assert int(d["TimeoutAbortSec"][0]) < int(d["TimeoutStopSec"][0])  # a hung loop saves nothing
    assert "sched_setscheduler" in " ".join(d["SystemCallFilter"])  # libzmq needs it back


def test_the_example_service_keeps_its_state_in_the_units_state_directory():
    example = tomllib.loads((UNIT.parent.parent / "services" / "example.toml").read_text())
    state = unit_lines()["StateDirectory"][0].replace("%i", "example")
    assert example["state_dir"] == f"/var/lib/{state}"
    assert example["sub"] and isinstance(example["sub"], list)


def test_the_proxy_unit_forwards_between_configurable_endpoints_and_restarts_on_failure():
    d = unit_lines(PROXY)
    assert d["ExecStart"] == [
        "/opt/lstmstream/bin/lstmstream proxy --frontend ${FRONTEND} --backend ${BACKEND}"
    ]
    assert d["EnvironmentFile"] == ["-/etc/lstmstream/proxy.env"]
    defaults = dict(v.strip('"').split("=", 1) for v in d["Environment"][0].split('" "'))
    assert set(defaults) == {"FRONTEND", "BACKEND"}
    assert d["Type"] == ["notify"] and d["Restart"] == ["on-failure"] and int(d["WatchdogSec"][0]) > 0
    assert "StateDirectory" not in d  # it keeps nothing


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_every_hardening_line_is_explained(unit):
    """Each directive in [Service] after ExecStart has a comment right above it (or its group)."""
    lines = unit.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ExecStart="))
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("["):
            break
        if "=" in lines[i] and not lines[i].startswith("#"):
            above = lines[i - 1]
            assert above.startswith("#") or "=" in above, f"no comment for {lines[i]!r}"


@pytest.fixture
def unit_dir(tmp_path):
    """The units in a temp dir, their ExecStart pointing at a real executable there (verify checks it)."""
    exe = tmp_path / "bin" / "lstmstream"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    for unit in UNITS:
        (tmp_path / unit.name).write_text(
            unit.read_text().replace("/opt/lstmstream/bin/lstmstream", str(exe))
        )
    return tmp_path


@needs_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_analyze_verify_is_clean(unit_dir, unit):
    r = subprocess.run(
        [ANALYZE, "verify", str(unit_dir / UNITS[unit])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    complaints = [ln for ln in (r.stdout + r.stderr).splitlines() if "lstmstream" in ln]
    assert r.returncode == 0, r.stdout + r.stderr
    assert complaints == []


@needs_analyze
def test_verify_would_catch_a_bad_directive(unit_dir):
    """The check above can fail: an unknown key in the same unit is reported."""
    bad = unit_dir / "bad@.service"
    bad.write_text((unit_dir / UNIT.name).read_text().replace("UMask=0077", "UMask=0077\nHardenMe=yes"))
    r = subprocess.run(
        [ANALYZE, "verify", str(unit_dir / "bad@example.service")], capture_output=True, text=True, timeout=60
    )
    assert "Unknown key 'HardenMe'" in r.stdout + r.stderr


@needs_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_security_exposure_is_at_most_1_5(unit_dir, unit):
    r = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", str(unit_dir / unit.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert found, r.stdout + r.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, r.stdout


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_code_paths_stay_read_only_and_writable_mounts_noexec(unit):
    """Seen live (systemd/live-check, systemd 252): ExecPaths= remounts its paths writable, and
    NoExecPaths=/ does not reach the service's own writable mounts; the unit corrects both."""
    d = unit_lines(unit)
    assert d["BindReadOnlyPaths"][0].split() == d["ExecPaths"][0].split()
    noexec = " ".join(d["NoExecPaths"]).split()
    assert {"/", "/tmp", "/var/tmp", "/dev/shm", "/run"} <= set(noexec)
    for state in d.get("StateDirectory", []):
        assert f"/var/lib/private/{state}" in noexec  # where DynamicUser keeps it
    assert "ConfigurationDirectory" not in d  # it made /etc/lstmstream a writable mount


def test_the_live_check_script_is_executable_bash():
    script = UNIT.with_name("live-check")
    assert script.stat().st_mode & 0o111
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
