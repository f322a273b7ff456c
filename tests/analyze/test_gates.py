"""Regression gates: the --fail-on language and the check against baseline runs."""

import json
from pathlib import Path

import pytest

from nanobench.analyze import gates
from nanobench.errors import InputError

FIX = Path(__file__).parents[1] / "fixtures"
PLAIN = {"NO_COLOR": "1", "COLUMNS": "160"}


def test_gates_parse_and_check():
    parsed = gates.parse_gates("ms_per_iter:5%,val_loss:0.02")
    assert parsed == [gates.Gate("ms_per_iter", 5.0, True), gates.Gate("val_loss", 0.02, False)]
    for bad, needle in [
        ("speed:5%", "METRIC one of"),
        ("val_loss:abc", "not a number"),
        ("val_loss", "METRIC:THRESHOLD"),
        ("", "no gate"),
    ]:
        with pytest.raises(InputError, match=needle):
            gates.parse_gates(bad)


def test_gates_exit_1_when_a_gate_fails_and_0_when_all_pass(nb):
    # current cpu fp32: 100 ms/iter, final val 1.6; baseline: 90 ms/iter, 1.59
    # ms_per_iter: +11.1% > 5% fails; val_loss: +0.01 <= 0.02 passes
    out = nb(
        "compare",
        FIX / "compare",
        "--baseline",
        FIX / "baseline",
        "--fail-on",
        "ms_per_iter:5%,val_loss:0.02",
        env=PLAIN,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAILED: tiny cpu fp32 ms_per_iter 100 vs baseline 90 (limit 94.5, 5%)" in out.stdout
    assert "ok: tiny cpu fp32 val_loss 1.6 vs baseline 1.59" in out.stdout
    assert "tiny cuda bf16: no baseline run of this configuration; not gated" in out.stdout
    out = nb(
        "compare",
        str(FIX / "compare"),
        "--baseline",
        str(FIX / "baseline"),
        "--fail-on",
        "ms_per_iter:20%,val_loss:0.02",
        "--json",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert all(g["passed"] for g in json.loads(out.stdout)["gates"])
    out = nb("compare", str(FIX / "compare"), "--fail-on", "ms_per_iter:5%")
    assert out.returncode == 2 and "needs --baseline" in out.stderr
