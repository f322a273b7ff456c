"""Mutation testing, one module at a time: `make mutate [MODULES="nanobench/files.py ..."]`.

For each module, mutmut (3.x) changes one thing at a time in it (`<` to `<=`, a constant
plus one, an argument dropped) and runs the tests that touch it; a mutant the tests still
pass on is a change to the module that no test would notice.

Each module gets its own scratch copy of the tree under build/mutate/<module>/ with the
repository's [tool.mutmut] settings plus two of its own: `only_mutate` (this module) and
the test files relevant to it (TESTS below; for a module not listed, the test files that
import it). mutmut then runs only those tests, and only the ones that call the mutated
function. The copy is made fresh every time, so a score never carries results from
older tests or code.

Prints, per module, the tool's own counts (mutmut export-cicd-stats) and writes them with
the surviving mutants' names to build/mutate/summary.txt; `mutmut show NAME` inside
build/mutate/<module>/ prints a survivor's diff. docs/testing.md lists the survivors
judged equivalent.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mutmut itself reads its settings with `toml`
    import toml as tomllib

REPO = Path(__file__).resolve().parent.parent

# The modules whose numbers decide what a user is told: verdicts, FLOPs/MFU/tokens, files.
DEFAULT_MODULES = [
    "nanobench/analyze/equivalence.py",
    "nanobench/analyze/attribution.py",
    "nanobench/analyze/seeds.py",
    "nanobench/analyze/references.py",
    "nanobench/measure/metrics.py",
    "nanobench/files.py",
]

# The tests worth running against each module's mutants. Wider than the file that imports
# it where other tests reach it through another module (compare, explain, a training run).
TESTS = {
    # The analyze modules: the files that test them directly (all of tests/analyze runs the
    # compare and explain end-to-end tests on every mutant, hours on 2 cores).
    "nanobench/analyze/equivalence.py": [
        "tests/analyze/test_equivalence.py",
        "tests/analyze/test_mutants_equivalence.py",
    ],
    "nanobench/analyze/attribution.py": [
        "tests/analyze/test_explain.py",
        "tests/analyze/test_mutants_attribution.py",
    ],
    "nanobench/analyze/seeds.py": [
        "tests/analyze/test_compare.py",
        "tests/analyze/test_mutants_seeds.py",
    ],
    "nanobench/analyze/references.py": [
        "tests/analyze/test_references.py",
        "tests/analyze/test_mutants_references.py",
    ],
    # test_metrics drives the Recorder directly and trains once; test_train's runs would
    # only repeat that, at seconds a mutant
    "nanobench/measure/metrics.py": [
        "tests/measure/test_flops.py",
        "tests/measure/test_energy.py",
        "tests/measure/test_metrics.py",
    ],
    "nanobench/files.py": ["tests/test_files.py", "tests/store/test_containment.py"],
}


def tests_for(module: str) -> list[str]:
    """The listed tests, else every test file that imports the module."""
    if module in TESTS:
        return [t for t in TESTS[module] if (REPO / t).exists()]
    dotted = module.removesuffix(".py").replace("/", ".")
    package, _, name = dotted.rpartition(".")
    pattern = re.compile(
        rf"\b{re.escape(dotted)}\b|from {re.escape(package)} import[^\n]*\b{re.escape(name)}\b"
    )
    found = [
        str(p.relative_to(REPO))
        for p in sorted((REPO / "tests").rglob("test_*.py"))
        if pattern.search(p.read_text(encoding="utf-8"))
    ]
    return found or ["tests"]


def toml_table(name: str, values: dict) -> str:
    """A TOML table of strings, numbers, booleans and lists of strings (all mutmut takes)."""
    lines = [f"[{name}]"]
    for key, value in values.items():
        text = str(value).lower() if isinstance(value, bool) else json.dumps(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def prepare(module: str, work: Path, tests: list[str]) -> None:
    """A fresh copy of the tree in `work` whose pyproject.toml mutates `module` alone."""
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    settings = tomllib.loads(pyproject).get("tool", {}).get("mutmut", {})
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("nanobench", "tests", *settings.get("also_copy", [])):
        shutil.copytree(REPO / folder, work / folder, ignore=ignore)
    settings = {
        **settings,
        "only_mutate": [module],
        "pytest_add_cli_args_test_selection": tests,
    }
    # Drop the repository's own [tool.mutmut] table (up to the next table) and write ours.
    without = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", pyproject)
    (work / "pyproject.toml").write_text(
        without.rstrip() + "\n\n" + toml_table("tool.mutmut", settings), encoding="utf-8"
    )


def mutmut(work: Path, *args: str, log=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    shared = REPO.parent / "shared" / "data"
    if not env.get("NANOBENCH_DATA_DIR") and shared.is_dir():
        env["NANOBENCH_DATA_DIR"] = str(shared)  # the copy's conftest cannot find it
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=work,
        env=env,
        stdout=log or subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def statuses(work: Path) -> dict[str, str]:
    """Every mutant's name -> mutmut's status for it ("killed", "survived", "not checked"...)."""
    listed = mutmut(work, "results", "--all", "true").stdout
    pairs = (line.strip().rsplit(": ", 1) for line in listed.splitlines() if ": " in line)
    return {name: status for name, status in pairs}


def run_module(module: str, out: Path, jobs: int, sample: int | None) -> dict:
    work = out / module.removesuffix(".py").replace("/", ".")
    tests = tests_for(module)
    print(f"mutate: {module} against {' '.join(tests)} (in {work})", file=sys.stderr, flush=True)
    prepare(module, work, tests)
    run = ["run", "--max-children", str(jobs)]
    with open(work / "run.log", "w") as log:
        if sample:
            # Make the mutants and the test map without testing any (a name matching none:
            # mutmut stops once they exist, saying nothing matches), then test a seeded
            # random sample of them by name.
            mutmut(work, *run, "no.such.mutant", log=log)
            names = sorted(statuses(work))
            chosen = random.Random(0).sample(names, min(sample, len(names)))
            ran = mutmut(work, *run, *chosen, log=log)
        else:
            ran = mutmut(work, *run, log=log)
    stats_file = work / "mutants" / "mutmut-cicd-stats.json"
    exported = mutmut(work, "export-cicd-stats")
    if ran.returncode != 0 or exported.returncode != 0 or not stats_file.exists():
        return {"module": module, "error": f"mutmut failed; see {work / 'run.log'}"}
    stats = json.loads(stats_file.read_text())
    status = statuses(work)
    survivors = sorted(name for name, s in status.items() if s == "survived")
    checked = sum(1 for s in status.values() if s != "not checked")
    return {"module": module, **stats, "checked": checked, "survivors": survivors}


def score(row: dict) -> float | None:
    """Killed (a test failed, or the mutant hung or crashed) over the mutants tested."""
    caught = row["killed"] + row["timeout"] + row["segfault"]
    return caught / row["checked"] if row["checked"] else None


def summary(rows: list[dict]) -> str:
    head = (
        f"{'module':40} {'killed':>6} {'surv':>5} {'no test':>7} {'timeout':>7} "
        f"{'tested':>6} {'made':>5} {'score':>6}"
    )
    lines = [head]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['module']:40} {row['error']}")
            continue
        s = score(row)
        lines.append(
            f"{row['module']:40} {row['killed']:6} {row['survived']:5} {row['no_tests']:7} "
            f"{row['timeout']:7} {row['checked']:6} {row['total']:5} "
            f"{'-' if s is None else f'{s:.0%}':>6}"
        )
    for row in rows:
        if row.get("survivors"):
            lines.append(f"\nsurvived in {row['module']}:")
            lines += [f"  {name}" for name in row["survivors"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="paths such as nanobench/files.py")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "mutate")
    parser.add_argument(
        "--sample",
        type=int,
        help="test a seeded random sample of this many mutants per module, not all of them",
    )
    args = parser.parse_args(argv)
    modules = args.modules or DEFAULT_MODULES
    missing = [m for m in modules if not (REPO / m).is_file()]
    if missing:
        print(f"mutate: no such module: {' '.join(missing)}", file=sys.stderr)
        return 2
    rows = [run_module(m, args.out, args.jobs, args.sample) for m in modules]
    text = summary(rows)
    print(text)
    (args.out / "summary.txt").write_text(text, encoding="utf-8")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
