"""Noisy runs in analysis: the recorded verdict read, slow outliers counted (hand-computed),
timings that rest on a noisy run marked, and a timing gate refusing to pass or fail them."""

import html
import json
import shutil
from io import StringIO
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from nanobench.analyze import compare, export, gates, noise
from nanobench.present import report, tables
from nanobench.store import results

FIX = Path(__file__).parents[1] / "fixtures"
PLAIN = {"NO_COLOR": "1", "COLUMNS": "160"}
BUSY = "other processes used 1.8 of 2 cores for 92% of the iterations"


def mark_noisy(path: Path, verdict="noisy", reasons=(BUSY,)) -> None:
    """Rewrite a result's metadata as if its run had recorded this noise verdict."""
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[results.META_KEY])
    meta["noise"] = {
        "verdict": verdict,
        "share_affected": 0.92 if reasons else 0.0,
        "reasons": [{"detector": "other_processes", "share": 0.92, "text": t} for t in reasons],
    }
    pq.write_table(
        table.replace_schema_metadata({results.META_KEY: json.dumps(meta).encode()}), path
    )


@pytest.fixture
def folders(tmp_path):
    for name in ("compare", "baseline"):
        shutil.copytree(FIX / name, tmp_path / name)
    return tmp_path


def test_recorded_verdict_and_old_files():
    assert noise.recorded({}) == noise.RunNoise("unknown", (), None)  # written before noise existed
    assert (
        noise.recorded({"noise": {"at_start": {}}}).verdict == "unknown"
    )  # killed before its verdict
    assert (
        noise.recorded({"noise": {"verdict": "loud"}}).verdict == "unknown"
    )  # not a verdict we know
    assert noise.recorded({"noise": "noisy"}).verdict == "unknown"
    got = noise.recorded(
        {
            "noise": {
                "verdict": "noisy",
                "share_affected": 0.4,
                "reasons": [
                    {
                        "detector": "gpu_clock_events",
                        "text": "the GPU was slowed (power cap) for 40%",
                    }
                ],
            }
        }
    )
    assert got == noise.RunNoise("noisy", ("the GPU was slowed (power cap) for 40%",), 0.4)


def test_slow_outliers_beyond_q3_plus_three_iqr():
    # 1..8 and x: Q1 3, Q3 7 (numpy's linear percentiles of 9 values), IQR 4, fence 7 + 12 = 19
    assert noise.slow_outliers([1, 2, 3, 4, 5, 6, 7, 8, 19.0]) == 0
    assert noise.slow_outliers([1, 2, 3, 4, 5, 6, 7, 8, 19.5]) == 1
    # fast steps never count; identical steps have IQR 0, so any slower one is an outlier
    assert noise.slow_outliers([0.001, 1, 1, 1, 1, 1]) == 0
    assert noise.slow_outliers([1.0] * 10 + [1.01, 1.5]) == 2
    assert noise.slow_outliers([1.0, 50.0, 1.0]) == 0  # too few steps for quartiles


def test_noisy_runs_are_marked_where_their_timings_are_used(folders):
    cpu = folders / "compare" / "tiny-cpu-fp32-s1.parquet"
    mark_noisy(cpu)
    c = compare.compare_files([str(folders / "compare")])
    [g] = c.groups
    assert [(r.config.device_type, r.noise.verdict) for r in g.runs] == [
        ("cpu", "noisy"),
        ("cuda", "unknown"),
        ("cuda", "unknown"),
    ]
    [p] = g.pairs
    # a noisy configuration is never the baseline where a quiet one is there (issue 24, item 12)
    assert (
        g.baseline.label == "cuda bf16"
        and "a configuration with a noisy run only" in g.baseline_why
    )
    cpu_id = p.other.runs[0].run_id
    assert p.verdict.endswith(
        f"the timings above rest on noisy runs, so the speedup and times are not to be trusted: "
        f"{cpu_id} ({BUSY})."
    )
    assert tables.speed_table(g).rows[1][0] == "cpu fp32 [noisy: 1/1 runs]"
    assert tables.targets_table(g).rows[1][1] == "cpu fp32 [noisy: 1/1 runs]"
    runs_table = tables.runs_table(g)
    noise_col = [h for h, _ in runs_table.columns].index("noise")
    assert [row[noise_col] for row in runs_table.rows] == ["-", "-", "noisy"]
    data = export.to_json(c)["groups"][0]
    assert next(r for r in data["runs"] if r["run_id"] == cpu_id)["noise"] == {
        "verdict": "noisy",
        "reasons": [BUSY],
        "share_affected": 0.92,
    }
    assert data["configurations"][1]["noisy_runs"] == [cpu_id]
    page = report.render_html(c)
    assert (
        "Noisy runs: their timings" in page
        and BUSY in page
        and html.escape(noise.TIMING_RULE) in page
    )


def test_quiet_runs_are_not_marked(folders):
    for f in (folders / "compare").glob("*.parquet"):
        mark_noisy(f, "quiet", ())
    [g] = compare.compare_files([str(folders / "compare")]).groups
    assert "noisy" not in g.pairs[0].verdict and "[noisy" not in tables.speed_table(g).rows[0][0]


def test_a_timing_gate_on_noisy_runs_neither_passes_nor_fails(folders, nb):
    # current cpu fp32: 100 ms/iter vs the baseline's 90: ms_per_iter:5% would fail; val_loss:0.02 passes
    mark_noisy(next((folders / "baseline").glob("*.parquet")))
    args = (
        "compare",
        folders / "compare",
        "--baseline",
        folders / "baseline",
        "--fail-on",
        "ms_per_iter:5%,val_loss:0.02",
    )
    out = nb(*args, env=PLAIN)
    assert out.returncode == 3, out.stdout + out.stderr  # refused, not passed (0) nor failed (1)
    line = next(ln for ln in out.stdout.splitlines() if "ms_per_iter" in ln)
    assert line.startswith(
        "REFUSED: tiny cpu fp32 ms_per_iter 100 vs baseline 90 (limit 94.5, 5%): timings of noisy runs, "
        "neither passed nor failed: "
    )
    assert BUSY in line and "--allow-noisy" in line
    assert (
        "ok: tiny cpu fp32 val_loss 1.6 vs baseline 1.59" in out.stdout
    )  # a loss gate is not about timing
    allowed = nb(*args, "--allow-noisy", "--json")
    assert allowed.returncode == 1
    ms = next(r for r in json.loads(allowed.stdout)["gates"] if r["metric"] == "ms_per_iter")
    assert ms["passed"] is False and ms["refused"] is False and BUSY in ms["noisy_runs"]
    loss_only = nb(
        "compare",
        folders / "compare",
        "--baseline",
        folders / "baseline",
        "--fail-on",
        "val_loss:0.02",
    )
    assert loss_only.returncode == 0


def test_gate_refusal_in_process_and_failure_still_wins(folders):
    mark_noisy(folders / "compare" / "tiny-cpu-fp32-s1.parquet")  # the current side this time
    current = compare.compare_files([str(folders / "compare")])
    base = compare.compare_files([str(folders / "baseline")])
    checks = gates.parse_gates("ms_per_iter:5%,tokens_per_s:5%,train_time_s:5%,val_loss:0.001")
    got, _ = gates.check_gates(current, base, checks)
    assert {r.gate.metric: r.passed for r in got} == {
        "ms_per_iter": None,
        "tokens_per_s": None,
        "train_time_s": None,
        "val_loss": False,
    }  # 1.6 vs 1.59 + 0.001
    judged, _ = gates.check_gates(current, base, checks, allow_noisy=True)
    assert {r.gate.metric: r.passed for r in judged}["ms_per_iter"] is False
    assert all(r.noisy for r in judged if r.gate.metric != "val_loss")
    buf = StringIO()
    tables.render_comparison(current, Console(file=buf, width=300, no_color=True), got, [])
    assert "REFUSED: tiny cpu fp32 tokens_per_s" in buf.getvalue()
