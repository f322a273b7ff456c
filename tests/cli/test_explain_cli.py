"""`nanobench explain` through its command line, in this process (seconds, not a fresh
interpreter per call): the committed example's cpu fp32 and cpu bf16 seeds, one rung apart.
The expected gap comes from the parquet files read with pandas, not through nanobench."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from nanobench import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "results" / "examples" / "cpu-fp32-vs-bf16"


@pytest.fixture(scope="module")
def ends(tmp_path_factory):
    """a/: the three fp32 seeds; b/: the three bf16 seeds."""
    d = tmp_path_factory.mktemp("explain")
    for side, dtype in (("a", "fp32"), ("b", "bf16")):
        (d / side).mkdir()
        for f in EXAMPLE.glob(f"*-cpu-{dtype}-*.parquet"):
            shutil.copy(f, d / side)
    return d


def final_val_mean(folder: Path) -> float:
    finals = [
        pd.read_parquet(f)["eval_val_loss"].dropna().iloc[-1] for f in folder.glob("*.parquet")
    ]
    assert len(finals) == 3
    return sum(finals) / 3


def explain(ends, *more) -> int:
    """The exit code, as `sys.exit(main())` makes it (None is 0)."""
    a, b = ends / "a", ends / "b"
    return cli.main(["explain", str(a), str(b), "--results", str(a), str(b), *more]) or 0


def test_explain_json_has_one_precision_rung_carrying_the_whole_gap(ends, capsys):
    assert explain(ends, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["factors"] for r in data["ladder"]["rungs"]] == [["precision"]]
    val = data["ladder"]["attribution"]["val_loss"]
    gap = final_val_mean(ends / "b") - final_val_mean(ends / "a")  # about -0.0006
    assert val["total"]["value"] == pytest.approx(gap, abs=1e-9)
    assert val["complete"] and [p["value"] for p in val["parts"]] == pytest.approx([gap])


def test_explain_text_names_the_rung_and_the_sum(ends, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    assert explain(ends) == 0
    out = capsys.readouterr().out
    assert "precision: fp32 -> bf16" in out and "The ladder: A -> precision -> B" in out
    assert "sum of the parts" in out
    gap = final_val_mean(ends / "b") - final_val_mean(ends / "a")
    assert f"a gap of {gap:+.4f}" in out


def test_explain_bad_input_is_one_line_and_exit_2(ends, capsys):
    assert explain(ends, "--margin", "0") == 2
    err = capsys.readouterr().err
    assert err == "nanobench: error: --margin 0.0: must be > 0 (nats of val loss)\n"
    assert cli.main(["explain", str(ends / "a"), str(ends / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing" in err
