"""The committed examples' outputs are what the code makes of their committed files today:
scripts/example-outputs.sh re-makes each one into a copy, and every byte must match (a
report's page less the time it was generated). An
output that lags the code (a sentence, a band, a column changed) fails here; re-make it with
`bash scripts/example-outputs.sh` and commit the diff."""

import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Every test here re-makes the examples (about 20 s of CPU): slow, so CI runs them after `make
# test`; fast in the default suite: analyze/test_compare.py's golden file
# (test_compare_output_matches_golden_file) and the report tests in tests/present.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "results" / "examples"
REPORTS = ROOT / "reports" / "examples"
# Every text/JSON output under results/examples that the script re-makes on any machine.
# (explain-recipes/explain-device-last.txt plans its CPU rungs on the recording machine: the
# script re-makes it there only, with DEVICE_LAST=1.)
OUTPUTS = [
    "cpu-fp32-vs-bf16/compare.txt",
    "nanogpt-cpu-recipe/compare.txt",
    "explain/explain.txt",
    "explain/explain.json",
    "explain-recipes/explain.txt",
]


@pytest.fixture(scope="module")
def remade(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("examples")
    copy = tmp / "examples"
    shutil.copytree(EXAMPLES, copy)
    for name in OUTPUTS:
        (copy / name).unlink()  # made again or missing: never the committed bytes by accident
    nb = tmp / "nb"
    nb.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m nanobench "$@"\n')
    nb.chmod(0o755)
    env = dict(
        os.environ,
        EX=str(copy),
        REP=str(tmp / "reports"),
        NB=str(nb),
        XDG_CACHE_HOME=str(tmp / "cache"),
    )
    env.pop("NANOBENCH_GROUP_ID", None)
    out = subprocess.run(
        ["bash", "scripts/example-outputs.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return copy


@pytest.mark.parametrize("name", OUTPUTS)
def test_committed_output_is_what_the_code_makes_today(remade, name):
    new, old = remade / name, EXAMPLES / name
    if not filecmp.cmp(new, old, shallow=False):
        import difflib

        diff = difflib.unified_diff(
            old.read_text().splitlines(), new.read_text().splitlines(), str(old), "re-made", n=0
        )
        pytest.fail("committed example lags the code:\n" + "\n".join(list(diff)[:40]))


GENERATED = re.compile(r"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC")


@pytest.mark.parametrize("name", ["cpu-fp32-vs-bf16", "explain"])
def test_committed_report_is_what_the_code_makes_today(remade, name):
    new, old = remade.parent / "reports" / name, REPORTS / name
    page = [GENERATED.sub("generated <time>", (d / "index.html").read_text()) for d in (new, old)]
    assert page[0] == page[1], f"reports/examples/{name}/index.html lags the code"
    assert filecmp.cmp(new / "plotly.min.js", old / "plotly.min.js", shallow=False)
    stills = [sorted(p.name for p in (d / "figures").glob("*.png")) for d in (new, old)]
    assert stills[0] == stills[1]


def test_every_output_the_script_writes_is_checked():
    """A new output added to the script without a place in OUTPUTS would go unchecked."""
    script = (ROOT / "scripts" / "example-outputs.sh").read_text()
    written = {
        line.split('"$EX/')[-1].split('"')[0] for line in script.splitlines() if '> "$EX/' in line
    }
    assert written <= set(OUTPUTS), written - set(OUTPUTS)
