"""`nanobench env --check` judged over injected facts; the command itself only for its shape."""

import json
import os
import subprocess
import sys

import pytest

from nanobench.measure import envcheck


def quiet_host(**changes):
    facts = {
        "logical_cpus": 4,
        "physical_cores": 2,
        "load_avg": (0.1, 0.1, 0.1),
        "cpu_busy_percent": [3.0, 2.0, 1.0, 0.0],
        "top_processes": [],
        "steal_frac": 0.0,
        "governors": ["performance"],
        "no_turbo": "1",
        "boost": None,
        "smt_control": "on",
        "smt_siblings": [[0, 2], [1, 3]],
        "on_battery": False,
        "temperatures": {
            "coretemp/Package id 0": {"current_c": 45.0, "high_c": 80.0, "critical_c": 100.0}
        },
        "gpus": [],
    }
    return facts | changes


def by_name(found):
    return {c.name: c for c in found}


def test_a_quiet_host_has_no_warnings():
    found = envcheck.checks(quiet_host())
    assert [c.status for c in found] == ["ok"] * len(found)
    assert set(by_name(found)) == {
        "cpu load",
        "steal time",
        "cpu governor",
        "turbo",
        "smt siblings",
        "thermal",
        "power",
    }


def test_each_cpu_finding_comes_with_its_fix():
    facts = quiet_host(
        cpu_busy_percent=[95.0, 10.0, 80.0, 5.0],
        load_avg=(3.2, 2.0, 1.0),
        top_processes=[{"cpu_percent": 95.0, "name": "python", "pid": 42}],
        steal_frac=0.08,
        governors=["powersave"],
        no_turbo="0",
        on_battery=True,
        temperatures={"coretemp/Core 0": {"current_c": 77.0, "high_c": 80.0, "critical_c": 100.0}},
    )
    found = by_name(envcheck.checks(facts))
    assert all(c.status == "warn" and c.fix for c in found.values())
    assert found["cpu load"].detail.startswith(
        "other processes use 1.9 of 4 cores now (load average 3.2); busiest: python (42) 95%"
    )
    assert "8%" in found["steal time"].detail
    assert found["cpu governor"].fix == "sudo cpupower frequency-set -g performance"
    assert found["turbo"].fix == "echo 1 | sudo tee /sys/devices/system/cpu/intel_pstate/no_turbo"
    assert (
        "1 of 2 cores have a busy sibling" in found["smt siblings"].detail
    )  # CPU 0 (or 2) of core [0, 2]
    assert "Core 0 77 C (high 80 C)" in found["thermal"].detail
    assert found["power"].fix == "plug in the charger"


def test_what_cannot_be_read_is_unknown_not_ok():
    facts = quiet_host(
        governors=None,
        no_turbo=None,
        boost=None,
        temperatures={},
        steal_frac=None,
        on_battery=None,
        smt_siblings=[[0], [1], [2], [3]],
    )
    found = by_name(envcheck.checks(facts))
    assert {n: c.status for n, c in found.items()} == {
        "cpu load": "ok",
        "cpu governor": "unknown",
        "turbo": "unknown",
        "thermal": "unknown",
    }
    assert found["turbo"].fix is None


def gpu(**changes):
    return {
        "index": 0,
        "name": "H100",
        "persistence_mode": 1,
        "sm_clock_mhz": 1980,
        "sm_clock_max_mhz": 1980,
        "power_limit_w": 700.0,
        "power_limit_default_w": 700.0,
        "temperature_c": 40,
        "slowdown_temperature_c": 87,
        "clock_event_mask": 0x1,
        "utilization_percent": 0,
        "compute_processes": 0,
    } | changes


def test_gpu_checks():
    calm = by_name(envcheck.checks(quiet_host(gpus=[gpu()])))
    assert [
        calm[f"gpu 0 {k}"].status
        for k in ("persistence", "clocks", "power limit", "thermal", "in use")
    ] == ["ok"] * 5
    bad = by_name(
        envcheck.checks(
            quiet_host(
                gpus=[
                    gpu(
                        persistence_mode=0,
                        clock_event_mask=0x4 | 0x20,
                        power_limit_w=450.0,
                        temperature_c=84,
                        utilization_percent=97,
                        compute_processes=2,
                    )
                ]
            )
        )
    )
    assert bad["gpu 0 persistence"].fix == "sudo nvidia-smi -i 0 -pm 1"
    assert (
        "held at its power limit now, slowed now (thermal (driver))" in bad["gpu 0 clocks"].detail
    )
    capped = by_name(envcheck.checks(quiet_host(gpus=[gpu(clock_event_mask=0x4)])))
    assert capped["gpu 0 clocks"].status == "ok"  # a power cap alone is not a slowdown (NVML 0x4)
    assert "held at its power limit now" in capped["gpu 0 clocks"].detail
    assert bad["gpu 0 power limit"].fix == "sudo nvidia-smi -i 0 -pl 700"
    assert (
        bad["gpu 0 thermal"].status == "warn" and "slowdown at 87 C" in bad["gpu 0 thermal"].detail
    )
    assert (
        bad["gpu 0 in use"].status == "warn"
        and "2 compute process(es)" in bad["gpu 0 in use"].detail
    )


def test_siblings_from_sysfs(tmp_path):
    for cpu, text in (("cpu0", "0,2"), ("cpu1", "1-3\n"), ("cpu2", "0,2"), ("cpu3", "1-3")):
        (tmp_path / cpu / "topology").mkdir(parents=True)
        (tmp_path / cpu / "topology" / "thread_siblings_list").write_text(text)
    assert envcheck._siblings(str(tmp_path)) == [[0, 2], [1, 2, 3]]


def knobs(cpu_root="/sys/devices/system/cpu") -> dict:
    """The settings whose fixes `env --check` prints (governors, turbo, boost, SMT), as read."""
    from pathlib import Path

    root = Path(cpu_root)
    paths = [
        *root.glob("cpu[0-9]*/cpufreq/scaling_governor"),
        root / "intel_pstate" / "no_turbo",
        root / "cpufreq" / "boost",
        root / "smt" / "control",
    ]
    return {str(p): p.read_text() for p in paths if p.is_file()}


def every_file(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("as_json", [True, False])
def test_env_check_command_lists_findings_and_changes_nothing(as_json, tmp_path):
    """The command's shape (which findings this machine gets is judged above, on injected
    facts) and that it changes nothing: the settings its fixes name read the same after, and
    it writes no file, in its folder, its home or its cache."""
    home, cache, cwd = tmp_path / "home", tmp_path / "cache", tmp_path / "cwd"
    for d in (home, cache, cwd):
        d.mkdir()
    (home / "kept.txt").write_text("mine")
    before, files_before = knobs(), every_file(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "nanobench", "env", "--check", *(["--json"] if as_json else [])],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(cache)},
    )
    assert proc.returncode == 0, proc.stderr
    assert knobs() == before and every_file(tmp_path) == files_before
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cache", "cwd", "home", "kept.txt"]
    if as_json:
        out = json.loads(proc.stdout)
        names = [c["name"] for c in out["checks"]]
        assert names[0] == "cpu load"
        assert all(c["status"] in ("ok", "warn", "unknown") for c in out["checks"])
        assert out["facts"]["logical_cpus"] >= 1
    else:
        assert "cpu load" in proc.stdout and "nothing was changed" in proc.stdout
