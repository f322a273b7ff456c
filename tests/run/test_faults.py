"""Fault injection through the real console script: SIGKILL, Ctrl-C (and a flood of
signals while the file is being finished), divergence, a disk that refuses writes, and
two runs that draw the same run id. Every run ends with a status and keeps its rows."""

import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from nanobench.run.scenario import load
from nanobench.run.train import RunOptions, train
from nanobench.store import results

# A run that would go on for minutes: smoke's tiny model with a 100,000-iteration schedule.
# Evaluating every iteration (one batch) makes the progress lines ("iter N: ...", written to
# stderr before step N) a record of how far the process got.
LONG = [
    "run",
    "smoke",
    "--threads",
    "1",
    "--set",
    "train.max_iters=100000",
    "--set",
    "train.lr_decay_iters=100000",
    "--set",
    "eval.interval=1",
    "--set",
    "eval.iters=1",
]
ITER_LINE = re.compile(r"^iter (\d+): ", re.M)


def start(args, out_dir, log_path, prefix=()):
    log = open(log_path, "w")
    return subprocess.Popen(
        [*prefix, *args, "--out", str(out_dir)], stdout=subprocess.PIPE, stderr=log, text=True
    )


def wait_for(predicate, proc, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert proc.poll() is None, "the run ended before the fault was injected"
        assert time.monotonic() < deadline, "timed out waiting for the run to progress"
        time.sleep(0.02)


def segments(out_dir):
    return list((out_dir / results.PARTIAL_DIR).glob("*/seg-*.parquet"))


def last_logged_iter(log_path) -> int:
    return max(int(n) for n in ITER_LINE.findall(log_path.read_text()))


def only_result(out_dir):
    [path] = out_dir.glob("*.parquet")
    return results.read_run(path)


# fast in the default suite: test_rows_reach_disk_within_the_time_window, store/test_results'
# recovery
@pytest.mark.slow
def test_sigkill_loses_at_most_one_flush_window(nb, tmp_path):
    out, log = tmp_path / "out", tmp_path / "stderr.txt"
    proc = start([*nb.cmd, *LONG], out, log)
    wait_for(lambda: len(segments(out)) >= 2, proc)
    time.sleep(0.2)  # into the next flush window, so that buffered rows are really lost
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    reached = last_logged_iter(log)  # iteration N's evaluation was logged, its step may have run
    assert results.find_partials(out), "a killed run leaves its partial folder"

    rec = nb("recover", out, timeout=60)
    assert rec.returncode == 0 and "recovered" in rec.stdout, rec.stderr
    run = only_result(out)
    assert run.meta["status"] == "killed" and "SIGKILL" in run.meta["status_reason"]
    iters = run.rows["iter"].tolist()
    assert iters == list(range(len(iters))) and len(iters) >= 100  # whole segments, in order
    lost = reached - iters[-1]
    print(
        f"SIGKILL at iteration {reached}: {len(iters)} rows recovered (last {iters[-1]}), {lost} iterations lost"
    )
    assert 0 <= lost <= results.FLUSH_EVERY_ITERS
    assert not results.find_partials(out)


def test_ctrl_c_then_a_flood_of_signals_completes_the_file(nb, tmp_path):
    """SIGINT stops the run; SIGTERMs every 10 ms while it finishes must not lose the file."""
    out, log = tmp_path / "out", tmp_path / "stderr.txt"
    proc = start([*nb.cmd, *LONG], out, log)
    wait_for(lambda: len(segments(out)) >= 1, proc)
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.01)
    stdout, _ = proc.communicate(timeout=30)
    stderr = log.read_text()
    # 130 once it is done; a SIGTERM landing after Python began to exit (its handlers reset)
    # ends the process by the default action, which is harmless then: the file is complete.
    assert proc.returncode in (130, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr
    run = only_result(out)
    assert run.meta["status"] == "interrupted" and str(run.path) in stdout
    iters = run.rows["iter"].tolist()
    # The reason says how and when, without repeating the status it stands beside.
    # (the count is the loop's at the signal; rows finishing after it may add one)
    assert re.fullmatch(
        r"stopped by Ctrl-C or SIGTERM after \d+ iterations", run.meta["status_reason"]
    )
    assert iters == list(range(len(iters)))
    assert len(iters) >= last_logged_iter(
        log
    )  # every step that ran is a row (only step N may not have)
    assert not results.find_partials(out)


def test_divergence_stops_with_status_and_rows(nb, tmp_path):
    out = nb(
        "run", "smoke", "--threads", "1", "--out", tmp_path, "--set", "train.learning_rate=1e6"
    )
    assert out.returncode == 4 and "Traceback" not in out.stderr  # not completed, not bad input
    run = only_result(tmp_path)
    assert run.meta["status"] == "diverged"
    assert re.match(r"loss became (nan|inf|-inf) at iteration \d+", run.meta["status_reason"])
    last = run.rows["loss"].iloc[-1]
    assert not (last == last and abs(last) < float("inf"))  # the last row is the non-finite one
    assert run.rows["iter"].tolist() == list(range(len(run.rows)))
    assert len(run.rows) < 30  # it stopped early


DISK_FULLS_AT_150 = textwrap.dedent("""
    # The disk "fills up" at iteration 150: RLIMIT_FSIZE makes the kernel refuse any write
    # past 4 KiB (EFBIG; SIGXFSZ ignored so it is an error, not a kill). A row segment is ~6 KiB.
    import resource, signal, sys
    from nanobench import cli
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    log = cli.RunDisplay.log
    def log_and_fill(self, text):
        if text.startswith("iter 150:"):
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        log(self, text)
    cli.RunDisplay.log = log_and_fill
    sys.exit(cli.main(sys.argv[1:]))
""")


@pytest.mark.slow  # fast in the default suite: test_files' write failures, store/test_containment's one-line message
def test_failed_write_is_one_line_and_earlier_rows_survive(nb, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULLS_AT_150, *LONG, "--max-iters", "300", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("nanobench: error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(errors) == 1 and "seg-000001.parquet: could not write results (" in errors[0]
    assert (
        "File too large" in errors[0] and "free space" not in errors[0]
    )  # a size limit, not a full disk
    assert "100 rows flushed before are intact" in errors[0] and "nanobench recover" in errors[0]
    assert not list(out.glob("*.parquet"))  # nothing half-written under a final name

    # Space is back: the next run publishes the killed run's rows before its own.
    again = nb("run", "smoke", "--threads", "1", "--max-iters", "1", "--out", out)
    assert again.returncode == 0 and "recovered a killed run" in again.stderr
    [killed] = [
        r for r in map(results.read_run, out.glob("*.parquet")) if r.meta["status"] == "killed"
    ]
    assert killed.rows["iter"].tolist() == list(range(100))


def test_two_runs_drawing_one_run_id_never_overwrite(tmp_path, monkeypatch):
    import nanobench.run.train as train_module

    ids = iter(["dup", "dup", "fresh"])  # the second run draws the first one's id, then another
    monkeypatch.setattr(train_module, "make_run_id", lambda *a: next(ids))
    opts = RunOptions(out_dir=str(tmp_path), threads=1, max_iters=2)
    first = train(load("smoke"), opts)
    before = first.path.read_bytes()
    second = train(load("smoke", ["train.seed=7"]), opts)
    assert (first.path.name, second.path.name) == ("dup.parquet", "fresh.parquet")
    assert first.path.read_bytes() == before
    assert results.read_run(second.path).meta["run_id"] == "fresh"


def test_a_partial_folder_of_the_same_id_is_never_reused(tmp_path):
    results.RunWriter(tmp_path, "same", {})
    with pytest.raises(FileExistsError):
        results.RunWriter(tmp_path, "same", {})


def test_rows_reach_disk_within_the_time_window(tmp_path):
    now = [100.0]  # the writer's clock, moved by the test: a loaded host cannot race it
    w = results.RunWriter(
        tmp_path, "slow", {}, flush_every_iters=100, flush_every_s=10.0, clock=lambda: now[0]
    )
    w.append([{"iter": 0, "loss": 1.0}])
    now[0] = 109.9
    w.append([{"iter": 1, "loss": 1.0}])  # inside the window: still buffered
    assert w.n_rows_flushed == 0 and not list(w.partial.glob("seg-*.parquet"))
    now[0] = 110.0
    w.append([{"iter": 2, "loss": 1.0}])  # three slow iterations: the time window flushes them
    assert w.n_rows_flushed == 3 and len(list(w.partial.glob("seg-*.parquet"))) == 1


CUDA_FULL_AT_30 = textwrap.dedent("""
    # The GPU "fills up" at iteration 30: from then on every forward pass asks the real CUDA
    # allocator for twice the card's memory, so the out-of-memory error is certain (a memory
    # fraction cap would not be: a small model's activations fit in blocks already cached).
    import sys, torch
    from nanobench import cli
    from nanobench.run import model
    full = []
    log, forward = cli.RunDisplay.log, model.GPT.forward
    def log_and_fill(self, text):
        if text.startswith("iter 30:"):
            full.append(True)
        log(self, text)
    def forward_when_full(self, idx, targets=None):
        if full and self.training:
            total = torch.cuda.get_device_properties(idx.device).total_memory
            torch.empty(2 * total, dtype=torch.uint8, device=idx.device)
        return forward(self, idx, targets)
    cli.RunDisplay.log, model.GPT.forward = log_and_fill, forward_when_full
    sys.exit(cli.main(sys.argv[1:]))
""")


@pytest.mark.gpu
def test_cuda_out_of_memory_fails_with_reason_and_keeps_rows(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CUDA_FULL_AT_30,
            *LONG,
            "--device",
            "cuda",
            "--max-iters",
            "100",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 4 and "Traceback" not in proc.stderr, proc.stderr
    run = only_result(tmp_path)
    assert run.meta["status"] == "failed" and "out of memory on cuda" in run.meta["status_reason"]
    iters = run.rows["iter"].tolist()
    assert iters == list(range(len(iters))) and len(iters) >= 30
