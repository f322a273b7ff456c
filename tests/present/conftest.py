"""The report of the fixture runs, made once per session through the command line: the page's
text tests (test_report.py) and its browser tests (test_report_browser.py) read the same one."""

from pathlib import Path

import pytest

FIX = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="session")
def fixture_report(tmp_path_factory, nb) -> Path:
    out = tmp_path_factory.mktemp("report")
    r = nb(
        "report", FIX / "compare", FIX / "compare-other", "-o", out, "--title", "fixtures <report>"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out / "index.html")
    return out / "index.html"
