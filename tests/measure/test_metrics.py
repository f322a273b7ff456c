"""Tokens, FLOPs, tokens/s and MFU against arithmetic done by hand from the recipe, the
Recorder's rows and summary on step times we choose, and the step timers on clocks we move.
Every expected number is written out; none is taken from the code under test."""

import types

import pytest
import torch

from nanobench.measure import metrics, peaks
from nanobench.run.scenario import load
from nanobench.run.train import RunOptions, train
from nanobench.store import results

# ---- tokens and FLOPs per iteration, from the recipe ---------------------------------------


def recipe(batch_size, grad_accum, block_size, n_layer, n_head, n_embd):
    return (
        types.SimpleNamespace(batch_size=batch_size, grad_accum=grad_accum),
        types.SimpleNamespace(block_size=block_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd),
    )


def test_work_per_iter_of_the_cpu_recipe_by_hand():
    # shakespeare_char_cpu: batch 12, grad_accum 1, T 64, 4 layers, 4 heads, 128 wide, vocab 65.
    # N (position embedding excluded, LM head tied to wte, no biases):
    #   wte 65*128 = 8,320; per layer 128 (ln_1) + 128*384 (c_attn) + 128*128 (c_proj)
    #   + 128 (ln_2) + 128*512 (c_fc) + 512*128 (c_proj) = 196,864, x4 = 787,456; ln_f 128
    #   N = 8,320 + 787,456 + 128 = 795,904
    # per token: 6N = 4,775,424; attention 12*L*H*Q*T = 12*4*4*32*64 = 393,216 -> 5,168,640
    # tokens 12*1*64 = 768; FLOPs 5,168,640 * 768 = 3,969,515,520
    assert metrics.work_per_iter(*recipe(12, 1, 64, 4, 4, 128), 795_904) == (768, 3_969_515_520)


def test_grad_accum_multiplies_tokens_and_flops_and_the_head_size_is_width_over_heads():
    # batch 8 x grad_accum 3 x T 32 = 768 tokens; 2 layers, 4 heads of 64/4 = 16.
    # per token: 6 * 1000 + 12*2*4*16*32 = 6,000 + 49,152 = 55,152; x 768 = 42,356,736
    assert metrics.work_per_iter(*recipe(8, 3, 32, 2, 4, 64), 1000) == (768, 42_356_736)


# ---- the Recorder: rows, running totals and the summary --------------------------------------


class Clock:
    """The run's wall clock, moved by the test."""

    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


class Meter:
    """An energy counter (joules since the run began) whose readings the test sets."""

    def __init__(self, joules=0.0):
        self.joules = joules

    def read_j(self):
        return self.joules


class Writer:
    def __init__(self):
        self.appended = []

    def append(self, rows):
        self.appended.append([dict(r) for r in rows])


def row(it, step_s, loss=2.0, wall=None):
    return {"iter": it, "loss": loss, "step_time_s": step_s, "wall_time_s": wall}


def recorder(**kw):
    args = dict(
        writer=None,
        tokens_per_iter=768,
        flops_per_iter=3_969_515_520,
        spec_peak_flops=4e11,
        measured_peak_flops=2e11,
        warmup_iters=2,
        energy=Meter(),
        device_memory=lambda: 123,
        t0=100.0,
        clock=Clock(),
    )
    return metrics.Recorder(**{**args, **kw})


def test_rows_get_cumulative_time_and_tokens_tokens_per_s_and_both_mfus():
    writer = Writer()
    rec = recorder(writer=writer)
    out = rec.record([row(0, 0.5), row(1, 0.25), row(2, 0.1), row(3, 0.2)])
    assert [r["train_time_s"] for r in out] == pytest.approx([0.5, 0.75, 0.85, 1.05])
    assert [r["tokens"] for r in out] == [768, 1536, 2304, 3072]
    # 768 tokens / 0.1 s = 7,680 tokens/s; 768 / 0.25 = 3,072
    assert out[2]["tokens_per_s"] == pytest.approx(7680) and out[1]["tokens_per_s"] == 3072
    # 3,969,515,520 FLOPs / 0.1 s = 39,695,155,200 FLOP/s: of 4e11, 0.0992378880; of 2e11, twice
    assert out[2]["mfu"] == pytest.approx(0.099237888)
    assert out[2]["mfu_measured"] == pytest.approx(0.198475776)
    assert [r["warmup"] for r in out] == [True, True, False, False]
    assert all(r["mem_device_bytes"] == 123 for r in out)
    assert writer.appended == [out] and rec.state["rows"] == 4
    assert rec.state["step_times"] == [0.1, 0.2]  # warm-up steps left out
    assert rec.state["first_step_s"] == 0.5 and rec.state["last_loss"] == 2.0


def test_an_evaluation_only_row_adds_no_time_tokens_or_rate():
    rec = recorder()
    rec.evals[4] = {"train": 1.9, "val": 2.1}
    rec.record([row(3, 0.1, loss=2.5)])
    [last] = rec.record([row(4, None, loss=None)])
    assert (last["train_time_s"], last["tokens"]) == (pytest.approx(0.1), 768)
    assert last["tokens_per_s"] is None and last["mfu"] is None and last["mfu_measured"] is None
    assert (last["eval_train_loss"], last["eval_val_loss"]) == (1.9, 2.1)
    assert rec.state["vals"] == [(4, 2.1)] and rec.evals == {}
    assert rec.state["last_loss"] == 2.5  # the evaluation row carries no training loss


def test_mfu_is_null_without_a_peak_never_a_guess():
    [r] = recorder(spec_peak_flops=None, measured_peak_flops=0.0).record([row(5, 0.1)])
    assert r["mfu"] is None and r["mfu_measured"] is None and r["tokens_per_s"] == 7680


def test_summary_from_the_median_steady_step():
    rec = recorder()
    rec.evals.update({4: {"train": 2.4, "val": 2.3}, 6: {"train": 2.2, "val": 2.35}})
    steps = [0.9, 0.5, 0.1, 0.3, 0.2, 0.4, 0.25]  # iterations 0-6; 0 and 1 are warm-up
    rec.record([row(i, s, loss=3.0 - i / 10) for i, s in enumerate(steps)])
    s = rec.summary(compiled=True)
    # steady steps 0.1, 0.3, 0.2, 0.4, 0.25: median 0.25
    assert s["iterations"] == 7 and s["median_step_time_s"] == 0.25
    assert s["median_tokens_per_s"] == pytest.approx(768 / 0.25)  # 3,072
    assert s["train_time_s"] == pytest.approx(2.65) and s["first_step_time_s"] == 0.9
    assert s["compile_time_s"] == pytest.approx(0.9 - 0.25)
    assert s["final_loss"] == pytest.approx(2.4)
    assert (s["final_val_loss"], s["final_val_iter"], s["best_val_loss"]) == (2.35, 6, 2.3)
    # 3,969,515,520 / 0.25 = 15,878,062,080 FLOP/s: of 4e11 0.0396951552, of 2e11 0.0793903104
    assert s["mfu"] == pytest.approx(0.0396951552)
    assert s["mfu_measured"] == pytest.approx(0.0793903104)
    assert rec.summary(compiled=False)["compile_time_s"] is None


def test_summary_before_any_step_is_empty_not_made_up():
    s = recorder().summary(compiled=True)
    assert s == {
        "iterations": 0,
        "final_loss": None,
        "final_val_loss": None,
        "final_val_iter": None,
        "best_val_loss": None,
        "median_step_time_s": None,
        "median_tokens_per_s": None,
        "train_time_s": 0.0,
        "first_step_time_s": None,
        "compile_time_s": None,
        "energy_j": None,
        "mfu": None,
        "mfu_measured": None,
    }


def test_a_first_step_faster_than_the_median_costs_no_compile_time():
    rec = recorder(warmup_iters=0)
    rec.record([row(0, 0.1), row(1, 0.3), row(2, 0.2)])
    assert rec.summary(compiled=True)["compile_time_s"] == 0.0  # 0.1 - 0.2 floored at 0


def test_an_empty_window_reads_no_device_memory_and_writes_nothing_new():
    writer = Writer()

    def memory():
        raise AssertionError("device memory read for an empty window")

    rec = recorder(writer=writer, device_memory=memory)
    assert rec.record([]) == [] and writer.appended == [[]] and rec.state["rows"] == 0


def test_a_resumed_run_continues_its_parents_time_tokens_and_validations():
    parent = {"train_time_s": 10.0, "tokens": 7680, "vals": [(10, 2.0)], "last_loss": 2.1}
    rec = recorder(totals={**parent, "rows": 99})  # only what a checkpoint carries counts
    [r] = rec.record([row(10, 0.5)])
    assert (r["train_time_s"], r["tokens"]) == (10.5, 8448) and rec.state["rows"] == 1
    assert rec.summary()["iterations"] == 11 and rec.summary()["best_val_loss"] == 2.0
    clock = rec.clock
    clock.t = 131.5
    assert rec.totals() == {
        "train_time_s": 10.5,
        "tokens": 8448,
        "vals": [(10, 2.0)],
        "last_loss": 2.0,
        "wall_time_s": 31.5,  # 131.5 on the clock, started at t0 = 100
    }


def test_energy_is_read_once_a_window_and_spread_over_its_rows_in_wall_time():
    clock, meter = Clock(100.0), Meter(0.0)  # made at 0 s of the run, 0 J
    rec = recorder(clock=clock, energy=meter)
    clock.t, meter.joules = 102.0, 40.0  # the window ends at 2 s with 40 J
    out = rec.record([row(0, 0.5, wall=0.5), row(1, 0.5, wall=1.0), row(2, 0.5, wall=2.0)])
    assert [r["energy_j"] for r in out] == pytest.approx([10.0, 20.0, 40.0])
    clock.t, meter.joules = 104.0, 60.0  # the next window starts where this one ended
    [r] = rec.record([row(3, 0.5, wall=3.0)])
    assert r["energy_j"] == pytest.approx(50.0) and rec.summary()["energy_j"] == 60.0


def test_no_energy_counter_means_no_energy_column():
    [r] = recorder(energy=metrics.NoEnergyMeter("none here")).record([row(0, 0.1, wall=0.1)])
    assert "energy_j" not in r
    assert recorder(energy=metrics.NoEnergyMeter("x")).summary()["energy_j"] is None


def test_a_ddp_iteration_lasts_as_long_as_its_slowest_rank():
    class TwoRanks:  # stands for a process group: rank 1 was slower on the first step
        def gather_step_times(self, mine):
            return [mine, [0.3, 0.05]]

    rec = recorder(ddp=TwoRanks())
    out = rec.record([row(2, 0.1), row(3, 0.2)])
    assert [r["rank_step_time_s"] for r in out] == [[0.1, 0.3], [0.2, 0.05]]
    assert [r["step_time_s"] for r in out] == [0.3, 0.2]
    assert out[0]["tokens_per_s"] == pytest.approx(768 / 0.3)
    # the final, evaluation-only window has no step time to gather
    [final] = recorder(ddp=None).record([row(4, None)])
    assert "rank_step_time_s" not in final
    [final] = rec.record([row(4, None)])
    assert "rank_step_time_s" not in final and final["step_time_s"] is None


def test_the_noise_sampler_sees_each_window():
    marked = []
    rec = recorder(noise=types.SimpleNamespace(mark=lambda rows: marked.append(len(rows))))
    rec.record([row(0, 0.1), row(1, 0.1)])
    assert marked == [2]


# ---- the run: the same arithmetic in a result file --------------------------------------------


def test_a_training_run_records_tokens_and_mfu_from_the_recipe(tmp_path, monkeypatch):
    """smoke with grad_accum 2: 4 x 2 x 16 = 128 tokens per iteration. Synthetic text has 27
    characters; the model is 1 layer, 2 heads, 32 wide, no biases:
      N = 27*32 (wte) + 32 + 32*96 + 32*32 + 32 + 32*128 + 128*32 (the layer) + 32 (ln_f)
        = 864 + 12,352 + 32 = 13,248
      per token 6N + 12*1*2*16*16 = 79,488 + 6,144 = 85,632; per iteration x 128 = 10,960,896
    Peaks are injected (1 TFLOP/s spec, 0.5 measured): this host's own do not matter."""
    monkeypatch.setattr(peaks, "spec_peak", lambda *a: peaks.Peak(1e12, "test spec"))
    monkeypatch.setattr(peaks, "measured_peak", lambda *a: peaks.Peak(5e11, "test measured"))
    outcome = train(
        load("smoke", ["train.grad_accum=2"]),
        RunOptions(out_dir=str(tmp_path), threads=1, max_iters=3),
    )
    run = results.read_run(outcome.path)
    steps = run.rows.iloc[:-1]
    assert run.meta["flops"]["per_iter"] == 10_960_896 and run.meta["flops"]["per_token"] == 85_632
    assert steps["tokens"].tolist() == [128, 256, 384]
    assert steps["tokens_per_s"].tolist() == pytest.approx((128 / steps["step_time_s"]).tolist())
    assert steps["mfu"].tolist() == pytest.approx(
        (10_960_896 / steps["step_time_s"] / 1e12).tolist()
    )
    assert steps["mfu_measured"].tolist() == pytest.approx(
        (10_960_896 / steps["step_time_s"] / 5e11).tolist()
    )


# ---- the step timers ------------------------------------------------------------------------


def test_perf_counter_timer_syncs_then_reads_the_clock():
    calls, clock = [], Clock(5.0)
    timer = metrics.PerfCounterTimer(lambda: calls.append(clock.t), clock=clock)
    timer.start()
    clock.t = 5.25
    assert timer.stop() == pytest.approx(0.25) and calls == [5.0, 5.25]
    assert timer.seconds([0.25, 0.5]) == [0.25, 0.5]


def test_cuda_event_timer_records_on_the_runs_stream_and_converts_ms(monkeypatch):
    """torch.cuda's events and streams, stood in for: no GPU exists here."""
    log = []

    class Event:
        def __init__(self, enable_timing):
            assert enable_timing
            self.at = None

        def record(self, stream):
            self.at = stream
            log.append(("record", stream))

        def synchronize(self):
            log.append(("sync", self.at))

        def elapsed_time(self, end):
            return 250.0  # milliseconds

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: f"stream of {device}")
    timer = metrics.CudaEventTimer("cuda:1")
    handles = []
    for _ in range(2):
        timer.start()
        handles.append(timer.stop())
    assert timer.seconds([]) == [] and log.count(("sync", "stream of cuda:1")) == 0
    assert timer.seconds(handles) == [0.25, 0.25]
    assert log == [("record", "stream of cuda:1")] * 4 + [("sync", "stream of cuda:1")]


def test_to_host_reads_a_window_in_one_go():
    timer = metrics.PerfCounterTimer(lambda: None)
    pending = [
        metrics.PendingStep(7, 1e-3, torch.tensor(2.5), torch.tensor(0.75), 0.125, 3.0, 10, 20),
        metrics.PendingStep(8, 2e-3, torch.tensor(2.25), torch.tensor(0.5), 0.25, 3.5, 11, 21, 30),
    ]
    assert metrics.to_host(pending, timer) == [
        {
            "iter": 7,
            "loss": 2.5,
            "lr": 1e-3,
            "step_time_s": 0.125,
            "grad_norm": 0.75,
            "wall_time_s": 3.0,
            "mem_bytes": 10,
            "mem_peak_bytes": 20,
            "mem_reserved_bytes": None,
        },
        {
            "iter": 8,
            "loss": 2.25,
            "lr": 2e-3,
            "step_time_s": 0.25,
            "grad_norm": 0.5,
            "wall_time_s": 3.5,
            "mem_bytes": 11,
            "mem_peak_bytes": 21,
            "mem_reserved_bytes": 30,
        },
    ]
    assert metrics.to_host([], timer) == []
