"""Nothing read from a file decides where nanobench writes (issue 17).

Each entry point gets a traversal attempt through the real console script: it must exit 2
with one line naming the culprit, and the file system outside the output folder must be
exactly as it was (the whole tmp tree is listed before and after, symlinks not followed).
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from nanobench.errors import InputError
from nanobench.store import results

NB = [sys.executable, "-m", "nanobench"]
REPO = Path(__file__).resolve().parents[2]
SMOKE = (REPO / "scenarios" / "smoke.toml").read_text()
EXAMPLE_RUN = next((REPO / "results" / "examples" / "cpu-fp32-vs-bf16").glob("*-s1337-*.parquet"))


def tree(root: Path, skip: Path | None = None) -> dict:
    """Every path under root (not under skip) -> what it is: folder, symlink target or file digest."""
    listing = {}
    for folder, dirs, names in os.walk(root):  # os.walk does not follow symlinked folders
        for name in dirs + names:
            p = Path(folder) / name
            if skip is not None and (p == skip or skip in p.parents):
                continue
            rel = str(p.relative_to(root))
            if p.is_symlink():
                listing[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                listing[rel] = ("dir",)
            else:
                listing[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
    return listing


def refused(proc, *needles):
    """Exit 2, no traceback, exactly one error line, holding every needle."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("nanobench: error:")]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def world(tmp_path):
    """A folder tree around the output folder, with a file an attacker would like to reach."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.txt").write_text("precious\n")
    return tmp_path


def scenario_file(world: Path, name: str) -> Path:
    path = world / "evil.toml"
    path.write_text(SMOKE.replace('name = "smoke"', f"name = {json.dumps(name)}"))
    return path


@pytest.mark.parametrize("name", ["../../x", "/ABS/some/where/abs", ".hidden", "a/b"])
def test_scenario_name_leading_away_is_refused_before_any_row(world, name, nb):
    name = name.replace("/ABS", str(world))  # an absolute path inside the test's own tree
    evil = scenario_file(world, name)
    out = world / "OUT" / "a" / "b" / "c"
    before = tree(world)
    proc = nb("run", evil, "--out", out, "--max-iters", "2", cwd=world)
    refused(proc, f"{evil}: name: {name!r} is not a safe name")
    assert tree(world) == before  # not even the output folder was created


def test_scenario_name_set_on_the_command_line_is_refused(world, nb):
    before = tree(world)
    proc = nb(
        "run",
        "smoke",
        "--set",
        "name=../../x",
        "--out",
        world / "OUT",
        "--max-iters",
        "2",
        cwd=world,
    )
    refused(proc, "(with --set name=../../x): name: '../../x' is not a safe name")
    assert tree(world) == before


def test_group_id_from_the_environment_is_refused(world, nb):
    before = tree(world)
    proc = nb(
        "run",
        "smoke",
        "--out",
        world / "OUT",
        "--max-iters",
        "1",
        cwd=world,
        env={"NANOBENCH_GROUP_ID": "../../g"},
    )
    refused(proc, "NANOBENCH_GROUP_ID: '../../g' is not a safe name")
    assert not list((world / "OUT").rglob("*.parquet"))
    assert tree(world, skip=world / "OUT") == before


def plant_partial(out: Path, folder: str, run_id: str, **meta) -> Path:
    """A partial run as another machine's killed run would leave it: meta.json and a segment."""
    w = results.RunWriter(
        out, folder, {"pid": 999_999_999, "pid_host": "elsewhere", **meta}, flush_every_iters=1
    )
    w.append([{"iter": 0, "loss": 3.0, "step_time_s": 0.01}])
    meta_path = w.partial / "meta.json"
    meta_path.write_text(json.dumps(dict(json.loads(meta_path.read_text()), run_id=run_id)))
    return w.partial


@pytest.mark.parametrize("run_id", ["../../escaped", "/ABS/escaped", "other-run"])
def test_recover_refuses_a_run_id_from_metadata_and_leaves_the_partial(world, run_id, nb):
    out = world / "OUT"
    run_id = run_id.replace("/ABS", str(world / "outside"))
    partial = plant_partial(out, "r1", run_id)
    before = tree(world)  # the output folder included: the partial stays as it is
    proc = nb("recover", out, cwd=world)
    refused(
        proc,
        f"{partial}: refused to recover: its meta.json names run id {run_id!r}",
        "left where it is",
    )
    assert tree(world) == before


def test_run_leaves_such_a_partial_in_place_and_says_so(world, nb):
    out = world / "OUT"
    partial = plant_partial(out, "r1", "../../escaped")
    before = tree(world, skip=out)
    proc = nb("run", "smoke", "--out", out, "--max-iters", "1", "--threads", "1", cwd=world)
    assert proc.returncode == 0, proc.stderr
    assert f"nanobench: warning: {partial}: refused to recover" in proc.stderr
    assert (partial / "meta.json").is_file() and list(partial.glob("seg-*.parquet"))
    assert tree(world, skip=out) == before


def test_group_id_in_metadata_is_data_not_a_path(world, nb):
    out = world / "OUT"
    plant_partial(out, "r1", "r1", group_id="../../g")
    before = tree(world, skip=out)
    proc = nb("recover", out, cwd=world)
    assert proc.returncode == 0 and f"recovered {out / 'r1.parquet'}" in proc.stdout, proc.stderr
    assert results.read_meta(out / "r1.parquet")["group_id"] == "../../g"
    assert tree(world, skip=out) == before


def test_recover_refuses_a_partial_that_is_a_symlink_leading_away(world, nb):
    out = world / "OUT"
    away = world / "outside" / "partial"
    plant_partial(world / "elsewhere", "r1", "r1")
    (world / "elsewhere" / results.PARTIAL_DIR / "r1").rename(away)
    (out / results.PARTIAL_DIR).mkdir(parents=True)
    (out / results.PARTIAL_DIR / "r1").symlink_to(away)
    before = tree(world)
    proc = nb("recover", out, cwd=world)
    refused(proc, "refused to recover: it leads to", "outside", "left where it is")
    assert tree(world) == before  # in particular, the folder it points at is not deleted


def test_out_with_a_partial_folder_symlinked_away_is_refused(world, nb):
    out = world / "OUT"
    out.mkdir()
    (out / results.PARTIAL_DIR).symlink_to(world / "outside")
    before = tree(world)
    proc = nb("run", "smoke", "--out", out, "--max-iters", "1", "--threads", "1", cwd=world)
    refused(proc, "--out", "refused: it leads to", f"outside {out}")
    assert tree(world) == before


def test_checkpoint_folder_symlinked_away_is_refused_before_any_row(world, nb):
    out = world / "OUT"
    out.mkdir()
    (out / "checkpoints").symlink_to(world / "outside")
    before = tree(world)
    proc = nb(
        "run",
        "smoke",
        "--out",
        out,
        "--max-iters",
        "4",
        "--checkpoint-every",
        "2",
        "--threads",
        "1",
        cwd=world,
    )
    refused(proc, "--checkpoint-every:", f"{out / 'checkpoints'}: refused: it leads to")
    assert tree(world) == before  # no partial run, no row, nothing in the folder it points at


def test_resume_from_a_checkpoint_naming_a_scenario_that_leads_away(world, nb):
    import torch

    # A crafted checkpoint: only the fields `--resume` reads before the scenario is checked.
    ckpt = world / "crafted.pt"
    info = {"scenario": {"name": "../../x", "data": {"dataset": "synthetic"}}, "seed": 1}
    torch.save(
        {"format": "nanobench-checkpoint", "version": 1, "iter": 1, "info_json": json.dumps(info)},
        ckpt,
    )
    before = tree(world)
    proc = nb("run", "--resume", ckpt, "--out", world / "OUT" / "a" / "b", cwd=world)
    refused(proc, f"{ckpt} (its scenario): name: '../../x' is not a safe name")
    assert tree(world) == before


def test_report_over_a_planted_symlink_is_refused(world, nb):
    out = world / "report"
    out.mkdir()
    (out / "index.html").symlink_to(world / "outside" / "victim.txt")
    before = tree(world)
    proc = nb("report", EXAMPLE_RUN, "-o", out, cwd=world)
    refused(proc, f"{out / 'index.html'}: refused: it leads to {world / 'outside' / 'victim.txt'}")
    assert tree(world) == before


def test_report_folder_itself_may_be_a_symlink_the_user_made(world, nb):
    # The folder the user names is theirs to point anywhere: -o is the root, not a name from a file.
    (world / "link").symlink_to(world / "outside")
    proc = nb("report", EXAMPLE_RUN, "-o", world / "link", cwd=world)
    assert proc.returncode == 0, proc.stderr
    assert (world / "outside" / "index.html").is_file() and (
        world / "outside" / "victim.txt"
    ).read_text() == "precious\n"


def test_a_failed_write_names_its_cause_and_suggests_recover_only_while_rows_remain(tmp_path):
    w = results.RunWriter(tmp_path, "r1", {}, flush_every_iters=1)
    w.append([{"iter": 0, "loss": 3.0}])
    os.rename(w.partial, tmp_path / "moved")  # the partial folder disappears while the run goes on
    with pytest.raises(InputError) as info:
        w.append([{"iter": 1, "loss": 3.0}])
    message = str(info.value)
    assert "seg-000001.parquet: could not write results (the folder is missing" in message
    assert f"{w.partial} is gone" in message
    assert "free space" not in message and "recover" not in message
