"""Every kind of bad input, through the real console script: a message naming the culprit
(one line per problem, each starting `nanobench: error:`), exit code 2, no traceback.

Result-file readers (truncated, zero-byte, CSV renamed .parquet, foreign parquet, newer
schema_version, missing path, empty glob) are checked on `results.read_run` and
`results.expand_paths` in test_results.py; `compare`/`report` own their command-line cases.
"""

import datetime
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from nanobench.run import checkpoint
from nanobench.run.scenario import load
from nanobench.run.train import RunOptions, train
from nanobench.store import results


def toml(**sections) -> str:
    lines = ['name = "bad"', "[data]", 'dataset = "synthetic"']
    for section, body in sections.items():
        lines += [f"[{section}]", body]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The bad files the cases name, and one good checkpoint to misuse."""
    d = tmp_path_factory.mktemp("bad")
    scenarios = {
        "syntax.toml": 'name = "x"\n[model\nn_layer = 1\n',
        "unknown.toml": toml(train="lr = 0.001"),
        "type.toml": toml(model='n_layer = "two"'),
        "heads.toml": toml(model="n_embd = 30\nn_head = 4"),
        "block.toml": toml(model="block_size = 0"),
        "lr.toml": toml(train="learning_rate = -0.001\nmin_lr = 0.0"),
        "interval.toml": toml(eval="interval = 0"),
        "many.toml": toml(model="n_head = 0\nbias = 3", eval="iters = 0"),
    }
    for name, text in scenarios.items():
        (d / name).write_text(text)
    (d / "latin1.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    (d / "text.pt").write_text("iter,loss\n0,3.0\n")
    torch.save(
        {"when": datetime.datetime(2024, 1, 1)}, d / "pickle.pt"
    )  # code a checkpoint never holds
    torch.save({"weights": torch.zeros(3)}, d / "tensors.pt")
    run = train(
        load("smoke"),
        RunOptions(out_dir=str(d / "runs"), threads=1, max_iters=2, checkpoint_every=2),
    )
    ckpt = checkpoint.path_for(d / "runs", results.read_meta(run.path)["run_id"])
    data = ckpt.read_bytes()
    (d / "truncated.pt").write_bytes(data[: len(data) // 2])
    (d / "outfile").write_text("a file where a folder should be")
    partial = d / "damaged" / results.PARTIAL_DIR / "r1"
    partial.mkdir(parents=True)
    (partial / "meta.json").write_text('{"run_id": "r1", "sche')
    return {"dir": d, "ckpt": ckpt, "result": run.path}


# (case id, arguments with {dir}/{ckpt}/{result} placeholders, what the message must say)
CASES = [
    ("max-iters 0", ["run", "smoke", "--max-iters", "0"], "--max-iters 0: must be >= 1"),
    ("threads 0", ["run", "smoke", "--threads", "0"], "--threads 0: must be >= 1"),
    (
        "checkpoint-every 0",
        ["run", "smoke", "--checkpoint-every", "0"],
        "--checkpoint-every 0: must be >= 1",
    ),
    ("no scenario", ["run"], "give a SCENARIO"),
    (
        "--set without =",
        ["run", "smoke", "--set", "train.seed"],
        "--set 'train.seed': expected key=value",
    ),
    ("scenario missing", ["run", "{dir}/nope.toml"], "nope.toml: scenario file not found"),
    (
        "TOML syntax",
        ["run", "{dir}/syntax.toml"],
        "syntax.toml: TOML syntax error: Expected ']' at the end of a table declaration (at line 2, column 7)",
    ),
    ("not UTF-8", ["run", "{dir}/latin1.toml"], "latin1.toml: not UTF-8 text"),
    ("unknown key", ["run", "{dir}/unknown.toml"], "unknown.toml: train.lr: unknown key"),
    (
        "wrong type",
        ["run", "{dir}/type.toml"],
        "type.toml: model.n_layer: expected integer, got str 'two'",
    ),
    (
        "n_embd % n_head",
        ["run", "{dir}/heads.toml"],
        "model.n_embd: 30 is not divisible by model.n_head = 4",
    ),
    (
        "block_size 0",
        ["run", "{dir}/block.toml"],
        "block.toml: model.block_size: must be >= 1, got 0",
    ),
    (
        "negative lr",
        ["run", "{dir}/lr.toml"],
        "lr.toml: train.learning_rate: must be > 0, got -0.001",
    ),
    (
        "eval interval 0",
        ["run", "{dir}/interval.toml"],
        "interval.toml: eval.interval: must be >= 1, got 0",
    ),
    (
        "batch larger than split",
        ["run", "smoke", "--set", "train.batch_size=400"],
        "400 x 16 = 6400 tokens is larger than the val split of 'synthetic' (6000 tokens)",
    ),
    (
        "--resume missing",
        ["run", "--resume", "{dir}/none.pt"],
        "--resume {dir}/none.pt: no such file",
    ),
    (
        "--resume text file",
        ["run", "--resume", "{dir}/text.pt"],
        "{dir}/text.pt: not a readable checkpoint",
    ),
    (
        "--resume truncated",
        ["run", "--resume", "{dir}/truncated.pt"],
        "{dir}/truncated.pt: not a readable checkpoint",
    ),
    (
        "--resume pickled code",
        ["run", "--resume", "{dir}/pickle.pt"],
        "refused (loaded with weights_only=True)",
    ),
    (
        "--resume foreign torch file",
        ["run", "--resume", "{dir}/tensors.pt"],
        "a torch file, but not a nanobench checkpoint",
    ),
    ("--resume a result file", ["run", "--resume", "{result}"], "a result file, not a checkpoint"),
    (
        "--resume other scenario",
        ["run", "smoke", "--resume", "{ckpt}", "--set", "train.learning_rate=0.001"],
        "checkpoint of another scenario ('smoke': train.learning_rate = 0.003 there, 0.001 here)",
    ),
    (
        "--resume other model shape",
        ["run", "smoke", "--resume", "{ckpt}", "--set", "model.n_layer=2"],
        "checkpoint of another model shape ('smoke': model.n_layer = 1 there, 2 here)",
    ),
    (
        "--resume with --seeds",
        ["run", "--resume", "{ckpt}", "--seeds", "5"],
        "keeps its checkpoint's seed (1337); drop --seeds",
    ),
    (
        "--out is a file",
        ["run", "smoke", "--max-iters", "1", "--out", "{dir}/outfile"],
        "--out {dir}/outfile: cannot create the results folder",
    ),
    (
        "recover missing folder",
        ["recover", "{dir}/no-such-folder"],
        "{dir}/no-such-folder: no such folder",
    ),
    (
        "recover damaged partial",
        ["recover", "{dir}/damaged"],
        "meta.json: damaged, so this partial run cannot be recovered",
    ),
]


@pytest.fixture(scope="module")
def outcomes(files, tmp_path_factory, nb):
    """Run every case once, two at a time (each is a fresh interpreter)."""
    out_dir = tmp_path_factory.mktemp("out")
    fill = {k: str(v) for k, v in files.items()}

    def run(case):
        name, args, needle = case
        args = [a.format(**fill) for a in args]
        if args[0] == "run" and "--out" not in args:
            args += ["--out", str(out_dir / name.replace(" ", "_"))]
        proc = nb(*args, env={"NO_COLOR": "1", "COLUMNS": "10000"})
        return name, (proc, needle.format(**fill))

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(run, CASES))


def test_there_are_at_least_15_distinct_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 15


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_bad_input(outcomes, name):
    proc, needle = outcomes[name]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and all(line.startswith("nanobench: error: ") for line in lines), proc.stderr
    assert needle in proc.stderr


def test_every_scenario_problem_at_once(files, nb):
    """Type errors and values that cannot train, from one file, in one pass."""
    proc = nb("run", files["dir"] / "many.toml", timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 3, proc.stderr
    assert "many.toml: model.bias: expected boolean, got int 3" in lines[0]
    assert "many.toml: model.n_head: must be >= 1, got 0" in proc.stderr
    assert "many.toml: eval.iters: must be >= 1, got 0" in proc.stderr
