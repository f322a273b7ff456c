"""Checkpoints and resume: on the same device a continuation is bit-identical to the
uninterrupted run (model, optimizer, random streams and data position all restored)."""

import pandas as pd
import pytest
import torch

from nanobench.errors import InputError
from nanobench.run import checkpoint
from nanobench.run.scenario import load
from nanobench.run.train import RunOptions, train
from nanobench.store import results

# Dropout on, so that the continuation depends on the restored random stream too.
SETS = ["model.dropout=0.1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, nb):
    d = tmp_path_factory.mktemp("resume")
    scenario = load("smoke", SETS)
    straight = train(
        scenario, RunOptions(out_dir=str(d / "straight"), threads=1, overrides=tuple(SETS))
    )
    cut = train(
        scenario,
        RunOptions(
            out_dir=str(d / "cut"),
            threads=1,
            max_iters=20,
            checkpoint_every=10,
            overrides=tuple(SETS),
        ),
    )
    ckpt = checkpoint.path_for(d / "cut", results.read_meta(cut.path)["run_id"])
    out = nb("run", "--resume", ckpt, "--out", d / "resumed")
    assert out.returncode == 0, out.stderr
    [resumed] = (d / "resumed").glob("*.parquet")
    return {
        "straight": results.read_run(straight.path),
        "cut": results.read_run(cut.path),
        "resumed": results.read_run(resumed),
        "ckpt": ckpt,
    }


def test_same_device_resume_is_bit_identical(runs):
    straight, resumed = runs["straight"].rows, runs["resumed"].rows
    assert resumed["iter"].tolist() == list(range(20, 31))
    tail = straight[straight["iter"] >= 20].reset_index(drop=True)
    for col in ("loss", "grad_norm", "lr", "eval_train_loss", "eval_val_loss", "tokens"):
        pd.testing.assert_series_equal(tail[col], resumed[col], check_exact=True, obj=col)
    assert (
        runs["straight"].meta["sample"] == runs["resumed"].meta["sample"]
    )  # the final weights agree
    assert runs["resumed"].meta["summary"]["iterations"] == 30


def test_resumed_file_records_its_lineage(runs):
    meta, parent = runs["resumed"].meta, runs["cut"].meta
    assert meta["run_id"] != parent["run_id"] and meta["status"] == "completed"
    lineage = meta["resumed_from"]
    assert lineage["run_id"] == parent["run_id"] and lineage["iter"] == 20
    assert lineage["checkpoint"] == str(runs["ckpt"]) and lineage["device"]["type"] == "cpu"
    assert lineage["same_random_streams"] is True
    # Options not given on the command line came from the checkpoint.
    assert meta["options"]["threads"] == 1 and meta["options"]["max_iters"] == 30
    assert meta["scenario"] == parent["scenario"]
    # Times continue from the parent's totals.
    first = runs["resumed"].rows.iloc[0]
    parent_last = runs["cut"].rows[runs["cut"].rows["iter"] == 19].iloc[0]
    assert first["train_time_s"] > parent_last["train_time_s"]
    assert first["wall_time_s"] > parent_last["wall_time_s"]
    assert parent["checkpoint"] == {"path": str(runs["ckpt"]), "iter": 20}


def test_checkpoint_is_plain_data_loaded_with_weights_only(runs):
    state = torch.load(runs["ckpt"], map_location="cpu", weights_only=True)
    assert state["format"] == checkpoint.FORMAT and state["iter"] == 20
    assert isinstance(state["rng_cpu"], torch.Tensor)
    assert not list(
        runs["ckpt"].parent.glob(".*.tmp")
    )  # written under a temporary name, then renamed


def test_checkpoint_of_another_model_shape_is_refused(runs, tmp_path):
    with pytest.raises(
        InputError, match=r"checkpoint of another model shape .*model.n_embd = 32 there, 64 here"
    ):
        train(
            load("smoke", [*SETS, "model.n_embd=64"]),
            RunOptions(out_dir=str(tmp_path), threads=1, resume=str(runs["ckpt"])),
        )
    assert (
        not list(tmp_path.glob("*.parquet")) and not (tmp_path / ".partial").exists()
    )  # refused before any run


def test_resume_beyond_max_iters_is_refused(runs, tmp_path):
    with pytest.raises(InputError, match="nothing is left before max_iters 20"):
        train(
            load("smoke", SETS),
            RunOptions(out_dir=str(tmp_path), threads=1, max_iters=20, resume=str(runs["ckpt"])),
        )


def test_compare_labels_a_continuation_and_never_averages_it_with_fresh_runs(nb, tmp_path):
    """A resumed run is drawn on from its parent: its own configuration, labelled with lineage."""
    from nanobench.analyze import compare

    out = tmp_path / "r"
    first = nb(
        "run",
        "smoke",
        "--threads",
        "1",
        "--max-iters",
        "20",
        "--checkpoint-every",
        "10",
        "--out",
        out,
        "--quiet",
    )
    assert first.returncode == 0, first.stderr
    [ckpt] = (out / "checkpoints").glob("*.pt")
    second = nb("run", "--resume", ckpt, "--max-iters", "30", "--out", out, "--quiet")
    assert second.returncode == 0, second.stderr
    comparison = compare.compare_files([str(out)])
    [group] = comparison.groups
    labels = sorted(cs.label for cs in group.configs)
    assert labels == [
        "cpu fp32",
        "cpu fp32 continuing cpu fp32 @20",
    ]  # the last checkpoint, before iteration 20
    assert group.baseline.label == "cpu fp32"
    child = next(cs for cs in group.configs if cs.config.continues)
    assert (
        child.runs[0].evaluations[0].iter == 20
    )  # its rows start where the parent's checkpoint was


def test_resume_in_another_dtype_in_process(runs, tmp_path):
    """The cpu fp32 checkpoint at iteration 20 continued as cpu bf16, in process: its rows
    start at 20, it runs in bf16 and records its fp32 parent."""
    outcome = train(
        load("smoke", SETS),
        RunOptions(
            out_dir=str(tmp_path),
            threads=1,
            dtype="bf16",
            resume=str(runs["ckpt"]),
            max_iters=24,
            overrides=tuple(SETS),
        ),
    )
    assert outcome.status == "completed", outcome.reason
    child = results.read_run(outcome.path)
    assert child.rows["iter"].tolist() == list(range(20, 25))
    assert child.meta["options"]["dtype"] == "bf16" and "-bf16-" in outcome.path.name
    lineage = child.meta["resumed_from"]
    assert (lineage["dtype"], lineage["iter"], lineage["run_id"]) == (
        "fp32",
        20,
        runs["cut"].meta["run_id"],
    )
    # the same weights, one step on in bf16: the fp32 run's loss at 20, to bf16's precision
    # (8 bits of mantissa: about 0.4% of a loss near 3)
    straight = runs["straight"].rows.set_index("iter")["loss"]
    assert child.rows["loss"].iloc[0] == pytest.approx(straight[20], rel=0.02)


# fast in the default suite: test_resume_in_another_dtype_in_process,
# test_same_device_resume_is_bit_identical,
# test_compare_labels_a_continuation_and_never_averages_it_with_fresh_runs
@pytest.mark.slow
def test_resume_in_another_configuration_records_lineage(nb, tmp_path):
    """The cross-device path, exercised with what this machine has: resume a cpu fp32
    checkpoint as cpu bf16. The child records its parent and compare labels it so."""
    from nanobench.analyze import compare

    out = tmp_path / "r"
    first = nb(
        "run",
        "smoke",
        "--threads",
        "1",
        "--max-iters",
        "10",
        "--checkpoint-every",
        "10",
        "--out",
        out,
        "--quiet",
    )
    assert first.returncode == 0, first.stderr
    [ckpt] = (out / "checkpoints").glob("*.pt")
    second = nb(
        "run", "--resume", ckpt, "--dtype", "bf16", "--max-iters", "20", "--out", out, "--quiet"
    )
    assert second.returncode == 0, second.stderr
    child = next(results.read_run(p) for p in out.glob("*.parquet") if "-bf16-" in p.name)
    assert (
        child.meta["resumed_from"]["dtype"] == "fp32" and child.meta["resumed_from"]["iter"] == 10
    )
    assert child.rows["iter"].iloc[0] == 10 and child.meta["options"]["dtype"] == "bf16"
    comparison = compare.compare_files([str(out)])
    assert "cpu bf16 continuing cpu fp32 @10" in [cs.label for cs in comparison.groups[0].configs]
