"""`nanobench import`: nanoGPT, llm.c and CSV logs on committed fixtures (tests/fixtures/imports),
the refusals, and a compare over an imported run beside nanobench's own.

The hand-made nanoGPT fixtures follow train.py's print statements line for line; their
numbers are worked out in the comments below (N, FLOPs, nanoGPT's running MFU).
"""

import json
import math
from pathlib import Path

import pytest

from nanobench.analyze import compare, verdicts
from nanobench.errors import InputError
from nanobench.ingest import importer, record
from nanobench.measure import peaks
from nanobench.store import results

FIX = Path(__file__).parents[1] / "fixtures" / "imports"
EXAMPLES = Path(__file__).parents[2] / "results" / "examples" / "cpu-fp32-vs-bf16"
PLAIN = {"NO_COLOR": "1", "COLUMNS": "200"}


def imported(path, tmp_path, **kw):
    return results.read_run(importer.import_log(path, tmp_path, **kw))


def where(meta, key):
    return next(i["from"] for i in meta["imported"]["inferred"] if i["key"] == key)


# ---- nanoGPT ----------------------------------------------------------------------------------


def test_nanogpt_overrides_beat_the_config_file_and_say_where_each_value_came_from(tmp_path):
    run = imported(FIX / "nanogpt_overrides.log", tmp_path)
    m = run.meta
    s = m["scenario"]
    # config file says batch_size = 8, then `Overriding: batch_size = 4`: the later line wins
    assert (
        s["train"]["batch_size"] == 4
        and where(m, "train.batch_size") == "line 27: Overriding: batch_size = 4"
    )
    assert s["model"] == {
        "n_layer": 2,
        "n_head": 2,
        "n_embd": 64,
        "block_size": 32,
        "dropout": 0.0,
        "bias": False,
    }
    assert where(m, "model.n_layer").startswith("line 14 (config file config/tiny_char.py)")
    assert "default" in where(m, "train.weight_decay") and s["train"]["weight_decay"] == 0.1
    assert m["options"] == {
        "device": "cpu",
        "dtype": "fp32",
        "compile": False,
        "seed": 1337,
        "max_iters": 10,
        "threads": None,
    }
    assert m["status"] == "imported" and m["status_reason"] is None
    # N = 2 * (12 * 64^2 + 2 * 64) + 64 + 65 * 64 = 102,784 (the log prints 0.10M)
    assert m["model"]["n_params"] == 102_784
    # no shipped scenario has this recipe: its own group, and the closest one's differences
    assert m["imported"]["scenario_match"]["scenario"] is None and s["name"].startswith(
        "imported-nanogpt-"
    )
    assert m["imported"]["sha256"] == record.file_sha256(FIX / "nanogpt_overrides.log")
    rows = run.rows
    # steps 0..9 and the final evaluation at 10 (nanoGPT's step after it is left out)
    assert list(rows["iter"]) == list(range(11)) and math.isnan(rows["loss"].iloc[10])
    assert rows["loss"].iloc[3] == 3.8842 and rows["step_time_s"].iloc[3] == pytest.approx(0.0205)
    evals = rows.dropna(subset=["eval_val_loss"])
    assert list(evals["iter"]) == [0, 5, 10] and list(evals["eval_val_loss"]) == [
        4.1810,
        3.6254,
        3.1566,
    ]
    # iterations 0 and 5 evaluated first: their printed times hold the evaluation
    assert list(rows["iter"][rows["step_includes_eval"] == True]) == [0, 5]  # noqa: E712
    assert list(rows["warmup"]) == [True] * 5 + [False] * 6
    # nanoGPT's -100% (not yet estimated) is null; its 0.00% is 0
    assert math.isnan(rows["mfu_reported"].iloc[4]) and rows["mfu_reported"].iloc[5] == 0.0
    assert rows["tokens"].iloc[9] == 10 * 128
    # timing statistics: warm-up and iteration 5 left out -> 6..9: 20, 22, 21, 20 ms
    stats = compare.run_stats(run)
    assert stats.iterations == 10 and stats.median_step_s == pytest.approx(0.0205)
    assert (
        stats.config.imported == "nanogpt" and stats.config.label() == "cpu fp32 from nanogpt log"
    )
    # train time counts iteration 0 and 5 at that median, the rest as printed (sum of 1..4, 6..9 = 0.1645)
    assert rows["train_time_s"].iloc[9] == pytest.approx(0.1645 + 2 * 0.0205)
    assert rows["wall_time_s"].iloc[9] == pytest.approx(0.95 + 0.0815 + 0.16 + 0.083)


def test_nanogpt_compile_true_by_default_and_mfu_against_the_named_gpu(tmp_path):
    log = FIX / "nanogpt_compile.log"
    run = imported(log, tmp_path, device_name="NVIDIA A100-SXM4-80GB")
    m = run.meta
    assert m["options"]["compile"] is True and "default" in where(m, "options.compile")
    assert m["options"]["device"] == "cuda" and m["options"]["dtype"] == "bf16"
    assert where(m, "options.dtype") == "line 26: Overriding: dtype = bfloat16"
    # N = 6 * (12 * 384^2 + 2 * 384) + 384 + 65 * 384 = 10,646,784; per token 6N + 12*6*6*64*256
    # = 70,958,592; per iteration x 16,384 tokens = 1,162,585,571,328 FLOPs
    assert m["model"]["n_params"] == 10_646_784 and m["flops"]["per_iter"] == 1_162_585_571_328
    rows = run.rows
    # 20 ms on an A100 (312 TFLOP/s bf16): 1.1626e12 / 0.02 / 312e12 = 0.18631, nanoGPT's own figure
    assert rows["mfu"].iloc[5] == pytest.approx(1_162_585_571_328 / 0.02 / 312e12)
    assert rows["mfu_reported"].iloc[5] == pytest.approx(0.1863)
    assert math.isnan(rows["mfu"].iloc[4])  # iteration 4 evaluated first: no MFU from that time
    assert m["peak_flops"]["used_for_mfu"]["flops"] == 312e12
    # the 41 s first iteration (compilation and evaluation) is warm-up, out of the statistics
    assert compare.run_stats(run).median_step_s == pytest.approx(0.02)


def test_mfu_on_another_gpu_and_null_without_a_device_name(tmp_path):
    log = FIX / "nanogpt_compile.log"
    ti = imported(log, tmp_path / "a", device_name="NVIDIA GeForce RTX 4070 Ti")
    assert ti.rows["mfu"].iloc[6] == pytest.approx(
        1_162_585_571_328 / 0.02 / 80.2e12
    )  # 0.7248, not 0.1863
    bare = imported(log, tmp_path / "b")
    assert bare.rows["mfu"].isna().all() and bare.rows["mfu_reported"].iloc[6] == pytest.approx(
        0.1863
    )
    assert "no --device-name" in bare.meta["peak_flops"]["used_for_mfu"]["source"]
    assert bare.meta["device"]["name"] == "unknown (not in the log)"


def test_cpu_mfu_uses_this_machines_spec_only_for_this_machines_cpu(monkeypatch, tmp_path):
    from nanobench.measure import host

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no calibration cached (see the next test)
    monkeypatch.setattr(host, "cpu_model", lambda: "Test CPU 9000")
    monkeypatch.setattr(
        peaks, "cpu_spec_peak", lambda dtype, threads=None: peaks.Peak(100e9, f"spec for {dtype}")
    )
    assert record.peak_for("cpu", "Test CPU 9000", "fp32") == peaks.Peak(100e9, "spec for fp32")
    other = record.peak_for("cpu", "Some Laptop CPU", "fp32")
    assert other.flops is None and "not this machine's" in other.source


def test_cpu_mfu_is_null_when_this_machines_calibration_beats_the_spec(monkeypatch, tmp_path):
    """As for nanobench's own runs (peaks.spec_for_mfu): a spec below the measured matmul rate
    is too low. The calibration is read from the cache, written here; import never measures."""
    from nanobench.measure import host
    from nanobench.measure.device import Device
    from nanobench.measure.precision import Precision

    monkeypatch.setattr(host, "cpu_model", lambda: "Test CPU 9000")
    monkeypatch.setattr(
        peaks, "cpu_spec_peak", lambda dtype, threads=None: peaks.Peak(100e9, f"spec for {dtype}")
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = peaks.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = peaks._cache_key(Device.cpu(), Precision("fp32"))
    path.write_text(
        json.dumps(
            {key: {"flops": 150e9, "n": 1024, "reps": 3, "measured_at": "2026-11-29T08:42:00Z"}}
        )
    )
    peak = record.peak_for("cpu", "Test CPU 9000", "fp32")
    assert peak.flops is None and "below the measured 150 GFLOP/s" in peak.source
    path.write_text(
        json.dumps(
            {key: {"flops": 80e9, "n": 1024, "reps": 3, "measured_at": "2026-11-29T08:42:00Z"}}
        )
    )
    assert (
        record.peak_for("cpu", "Test CPU 9000", "fp32").flops == 100e9
    )  # the spec stands above a lower measurement


def _cut(src: Path, dst: Path, n_lines: int, partial: str = "") -> Path:
    lines = src.read_text().splitlines(keepends=True)
    dst.write_text("".join(lines[:n_lines]) + partial)
    return dst


def test_truncated_log_imports_what_it_holds(tmp_path):
    # up to `iter 7` (line 48), then half a line, as a killed run leaves it
    log = _cut(FIX / "nanogpt_overrides.log", tmp_path / "cut.log", 48, "iter 8: loss 3.26")
    run = imported(log, tmp_path / "out")
    assert run.meta["status"] == "imported"
    assert (
        run.meta["status_reason"] == "truncated at iteration 7 (the log ends before max_iters 10)"
    )
    assert run.info.shown_status == "imported (truncated at iteration 7)"
    assert run.meta["imported"]["last_line_cut"] and list(run.rows["iter"]) == list(range(8))
    stats = compare.run_stats(run)
    assert stats.status == "imported (truncated at iteration 7)"
    c = compare.compare_runs([stats])
    assert any("truncated at iteration 7" in w for w in c.warnings)


def test_a_line_nanogpt_never_prints_is_refused_by_the_cli_in_one_line(tmp_path, nb):
    text = (
        (FIX / "nanogpt_overrides.log")
        .read_text()
        .replace("iter 6: loss", "Traceback (most recent call last):\niter 6: loss")
    )
    log = tmp_path / "bad.log"
    log.write_text(text)
    r = nb("import", str(log), "--out", str(tmp_path / "out"), env=PLAIN)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"nanobench: error: {log}:47: cannot place this line in a nanoGPT train.py log: "
        "'Traceback (most recent call last):'"
    ]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.parquet"))


def test_a_config_line_that_is_not_python_is_refused(tmp_path):
    log = tmp_path / "bad.log"
    log.write_text(
        (FIX / "nanogpt_overrides.log").read_text().replace("n_head = 2", "n_head is two")
    )
    with pytest.raises(InputError, match=r"bad.log:15: cannot place this line .*'n_head is two'"):
        importer.parse_log(log)


def test_unknown_files_are_refused_naming_the_first_line(tmp_path, nb):
    log = tmp_path / "notes.txt"
    log.write_text("my training went fine\nloss was low\n")
    r = nb("import", str(log), "--out", str(tmp_path), env=PLAIN)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and f"{log}:1: not a nanoGPT" in r.stderr


def test_importing_one_log_twice_keeps_the_first_result(tmp_path):
    first = importer.import_log(FIX / "nanogpt_overrides.log", tmp_path)
    before = first.read_bytes()
    with pytest.raises(InputError, match="already imported as"):
        importer.import_log(FIX / "nanogpt_overrides.log", tmp_path)
    assert first.read_bytes() == before


def test_warmup_is_nanobench_runs_own():
    from nanobench.run.train import WARMUP_ITERS

    assert record.WARMUP_ITERS == WARMUP_ITERS


# ---- llm.c and CSV ------------------------------------------------------------------------------


def test_llmc_main_log_with_the_model_given_as_options(tmp_path):
    sets = [
        "model.n_layer=2",
        "model.n_head=2",
        "model.n_embd=64",
        "model.block_size=32",
        "train.batch_size=4",
        "train.max_iters=10",
        "vocab_size=65",
    ]
    run = imported(FIX / "llmc_main.log", tmp_path, sets=sets)
    m, rows = run.meta, run.rows
    assert m["imported"]["format"] == "llm.c" and m["options"]["dtype"] == "bf16"
    assert (
        where(m, "model.n_layer") == "--set model.n_layer=2" and m["model"]["n_params"] == 102_784
    )
    assert list(rows["iter"]) == list(range(11))
    assert (
        rows["loss"].iloc[0] == 10.9862
        and rows["lr"].iloc[5] == 0.0003
        and rows["grad_norm"].iloc[9] == 2.87
    )
    assert list(rows.dropna(subset=["eval_val_loss"])["eval_val_loss"]) == [10.9814, 8.8321, 7.9420]
    assert rows["step_time_s"].isna().all() and rows["tokens"].iloc[9] == 10 * 4 * 32
    stats = compare.run_stats(run)  # no times: steps are counted by their loss
    assert stats.iterations == 10 and stats.final_val_loss == 7.9420 and stats.median_step_s is None


def test_csv_columns_mapped_by_name(tmp_path):
    run = imported(FIX / "metrics.csv", tmp_path, sets=["device=cpu"])
    m, rows = run.meta, run.rows
    assert m["imported"]["inferred"][0]["value"] == {
        "iter": "Step",
        "loss": "loss",
        "val": "val_loss",
        "step_time_ms": "time_ms",
    }
    assert "columns not recorded: throughput" in m["imported"]["notes"]
    assert rows["step_time_s"].iloc[1] == 0.030 and rows["eval_val_loss"].iloc[5] == 3.58
    assert rows["step_includes_eval"].isna().all()  # a CSV does not say how its times were taken
    assert compare.run_stats(run).median_step_s == pytest.approx(0.030)  # iterations 5..9


@pytest.mark.parametrize(
    "name, text, message",
    [
        (
            "main.log",
            "s:0 trl:10.9 lr:0.0\ns:1 trl:10.4 speed:fast\n",
            r"main.log:2: .*llm.c main.log \(unknown field 'speed'\)",
        ),
        ("m.csv", "epoch,loss\n0,4.2\n", r"m.csv:1: no iteration column"),
        ("m.csv", "iter,loss\n0,4.2\n1,oops\n", r"m.csv:3: column 'loss' holds 'oops'"),
    ],
)
def test_llmc_and_csv_lines_that_cannot_be_placed_are_refused(tmp_path, name, text, message):
    log = tmp_path / name
    log.write_text(text)
    with pytest.raises(InputError, match=message):
        importer.parse_log(log)


# ---- compare over an imported run and nanobench runs ------------------------------------------------


def test_imported_cpu_recipe_is_grouped_with_the_scenario_and_compared(tmp_path, nb):
    # the CPU recipe exactly (as nanoGPT's README runs it), cut after a few iterations
    text = (FIX / "nanogpt_overrides.log").read_text()
    for old, new in (
        ("eval_interval = 5", "eval_interval = 250"),
        ("eval_iters = 10", "eval_iters = 20"),
        ("batch_size = 8", "batch_size = 12"),
        ("block_size = 32", "block_size = 64"),
        ("n_layer = 2", "n_layer = 4"),
        ("n_head = 2", "n_head = 4"),
        ("n_embd = 64", "n_embd = 128"),
        ("max_iters = 10", "max_iters = 2000"),
        ("lr_decay_iters = 10", "lr_decay_iters = 2000"),
        ("warmup_iters = 2", "warmup_iters = 100"),
        ("Overriding: batch_size = 4", "Overriding: batch_size = 12"),
    ):
        text = text.replace(old, new)
    log = tmp_path / "cpu_recipe.log"
    log.write_text(text)
    path = importer.import_log(log, tmp_path / "out")
    meta = results.read_meta(path)
    assert (
        meta["scenario"]["name"] == "shakespeare_char_cpu"
        and meta["imported"]["scenario_match"]["differs"] == []
    )
    assert (
        meta["dataset"]["sha256"]
        == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    )
    c = compare.compare_files([str(path), *map(str, sorted(EXAMPLES.glob("*fp32*.parquet")))])
    [g] = c.groups
    assert [cs.label for cs in g.configs] == [
        "cpu fp32",
        "cpu fp32 from nanogpt log",
    ]  # nanobench is the baseline
    [p] = g.pairs
    assert p.equal_iter.at == 0 and p.equal_iter.other_val == 4.1810
    assert "imported nanogpt log" in " ".join(p.explanation["sentences"])
    assert any("truncated at iteration" in w for w in c.warnings)
    # the log does not say its threads: "not recorded", not a thread count called None
    assert any(
        x.startswith("threads differs: 2 (") and "not recorded (1 run)" in x for x in g.confounds
    ), g.confounds
    # the CLI prints the same comparison, and the reference check of each run
    r = nb("compare", str(path), str(EXAMPLES), env=PLAIN)
    assert r.returncode == 0, r.stderr
    assert "cpu fp32 from nanogpt log" in r.stdout and "Is each run normal?" in r.stdout
    assert "imported (truncated at iteration 10)" in r.stdout


# ---- a real log: nanoGPT's own train.py, CPU recipe, on this kind of machine ----------------------


def test_real_nanogpt_cpu_recipe_log(tmp_path):
    """tests/fixtures/imports/nanogpt_cpu_recipe.log: `python train.py config/train_shakespeare_char.py
    --device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12
    --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0`
    (stdout; nanoGPT at 3adf61e, torch 2.13 CPU)."""
    run = imported(FIX / "nanogpt_cpu_recipe.log", tmp_path)
    m, rows = run.meta, run.rows
    assert (
        m["scenario"]["name"] == "shakespeare_char_cpu"
        and m["status"] == "imported"
        and m["status_reason"] is None
    )
    assert (
        m["model"]["n_params"] == 795_904 and m["flops"]["per_iter"] == 3_969_515_520
    )  # as nanobench's own runs
    evals = rows.dropna(subset=["eval_val_loss"])
    assert list(evals["iter"]) == list(range(0, 2001, 250))
    assert list(evals["eval_val_loss"]) == [
        4.1649,
        2.4447,
        2.3141,
        2.1905,
        2.0528,
        2.0089,
        1.9225,
        1.8921,
        1.8857,
    ]
    stats = compare.run_stats(run)
    assert (
        stats.iterations == 2000 and len(stats.step_times_s) == 2000 - 5 - 7
    )  # warm-up (0-4) and evaluating steps 250..1750 out
    c = compare.compare_runs([stats])
    [check] = c.references
    assert check.first_outside is None  # nanoGPT's own run is normal against nanobench's references


def test_same_machine_example_calls_the_gap_the_two_programs():
    """results/examples/nanogpt-cpu-recipe: nanoGPT's log imported with this CPU's name, and
    nanobench's three seeds on that CPU in fp32. The gap at equal iterations is the programs',
    never "hardware and precision"; the numbers are the example's, by hand from compare.txt.
    nanoGPT's seed 1337 draws other weights and batches than nanobench's seed 1337: no pairing, so
    the gap is between the means, and says it cannot be told from the choice of seeds."""
    c = compare.compare_files(
        [str(Path(__file__).parents[2] / "results" / "examples" / "nanogpt-cpu-recipe")]
    )
    [g] = c.groups
    assert [cs.label for cs in g.configs] == ["cpu fp32 best", "cpu fp32 from nanogpt log"]
    [p] = g.pairs
    assert p.explanation["iter"] == 2000 and p.explanation["at_equal_iters"] == pytest.approx(
        1.8857 - 1.8922, abs=1e-4
    )
    assert p.equal_iter.split.shared == () and "no seed ran in both" in p.verdict
    assert "that much is the two programs (nanogpt and nanobench" in p.explanation["sentences"][1]
    # one nanoGPT run: undecided, and the way to more seeds is more logs, not --seeds
    text = verdicts.equivalence_sentence(p.equivalence, p.base.label, p.other.label, "nanogpt")
    assert text.startswith(
        "Equivalence of cpu fp32 from nanogpt log and cpu fp32 best: undecided, 1 and 3 seed(s)"
    )
    assert text.endswith(
        "logs of runs with other seeds for the imported nanogpt side (nanoGPT's train.py fixes its seed at 1337)."
    )
