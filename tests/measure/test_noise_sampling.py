"""Noise detectors, the verdict's thresholds and the sampler, over injected readings: nothing
here depends on this machine's load, clock or hardware."""

import pytest

from nanobench.measure import noise
from nanobench.measure.noise import Reading, interval, verdict

GHZ = 1e9


class FakeMachine:
    """A machine of `cpus` logical CPUs where other processes use `other` cores and this run
    `job` cores. Its clock moves `dt` seconds per reading and `tick` per look at the clock;
    the counters follow the clock at the current rates. Fields of `extra` go into every
    Reading as given."""

    def __init__(self, cpus=2, other=0.0, job=1.0, steal=0.0, dt=0.5, tick=0.0, **extra):
        self.cpus, self.other, self.job, self.steal, self.dt, self.tick, self.extra = (
            cpus,
            other,
            job,
            steal,
            dt,
            tick,
            extra,
        )
        self.t = self._counted_to = 100.0
        self.busy = self.total = self.stolen = self.job_s = 0.0
        self.n = 0

    def clock(self):
        self.t += self.tick
        return self.t

    def __call__(self):
        self.t += self.dt
        elapsed, self._counted_to = self.t - self._counted_to, self.t
        self.busy += (self.other + self.job) * elapsed
        self.total += self.cpus * elapsed  # stolen time is part of the total
        self.stolen += self.steal * self.cpus * elapsed
        self.job_s += self.job * elapsed
        self.n += 1
        return Reading(self.t, self.busy, self.total, self.stolen, self.job_s, **self.extra)


def cols(**values):
    """Interval columns with every column present (null unless given)."""
    return {c: None for c in noise.COLUMNS} | values


# ---- interval ------------------------------------------------------------------------------------


def test_interval_other_cores_and_steal_by_hand():
    # 2 CPUs, 1 s: total 2.0 CPU-s, of which busy 1.9 (job 0.6 -> others 1.3), steal 0.1 (5%)
    a = Reading(0.0, cpu_busy_s=10.0, cpu_total_s=50.0, cpu_steal_s=1.0, job_cpu_s=3.0)
    b = Reading(
        1.0,
        cpu_busy_s=11.9,
        cpu_total_s=52.0,
        cpu_steal_s=1.1,
        job_cpu_s=3.6,
        load_1m=2.5,
        cpu_freq_hz=3 * GHZ,
        on_battery=False,
        gpu_sm_clock_mhz=1400,
        gpu_clock_event_mask=4,
        gpu_temp_c=71,
    )
    c = interval(a, b, logical_cpus=2)
    assert c["other_cpu_cores"] == pytest.approx(1.3)
    assert c["cpu_steal_frac"] == pytest.approx(0.05)
    assert (c["load_1m"], c["cpu_freq_hz"], c["on_battery"]) == (2.5, 3 * GHZ, False)
    assert (c["gpu_sm_clock_mhz"], c["gpu_clock_event_mask"], c["gpu_temp_c"]) == (1400, 4, 71)
    assert set(c) == set(noise.COLUMNS)


def test_interval_clamps_tick_rounding_and_reads_null_without_counters():
    # the job's CPU time rounded up past the system's busy time: never negative cores
    a = Reading(0.0, 10.0, 50.0, None, 3.0)
    b = Reading(1.0, 10.5, 52.0, None, 3.52)
    c = interval(a, b, 2)
    assert c["other_cpu_cores"] == 0.0 and c["cpu_steal_frac"] is None
    blind = interval(Reading(0.0, None, None, None, None), Reading(1.0, None, None, None, None), 2)
    assert blind["other_cpu_cores"] is None and blind["cpu_steal_frac"] is None


# ---- each detector, at its threshold -------------------------------------------------------------


@pytest.mark.parametrize(
    "idle, other, hit",
    [(0, 0.5, False), (0, 0.51, True), (1, 1.5, False), (1, 1.6, True), (0, None, False)],
)
def test_other_processes_beyond_the_idle_cores_plus_half_a_core(idle, other, hit):
    v = verdict([(10, cols(other_cpu_cores=other))], idle_cores=idle, logical_cpus=2)
    assert (v["verdict"] == "noisy") is hit
    if hit:
        assert v["reasons"][0]["detector"] == "other_processes"
        assert (
            v["reasons"][0]["text"]
            == f"other processes used {other:.1f} of 2 cores for 100% of the iterations"
        )


@pytest.mark.parametrize("steal, hit", [(0.049, False), (0.05, True), (0.3, True)])
def test_steal_from_five_percent(steal, hit):
    v = verdict([(10, cols(cpu_steal_frac=steal))], idle_cores=0, logical_cpus=2)
    assert (v["verdict"] == "noisy") is hit
    if hit:
        assert v["reasons"][0]["text"].startswith(
            f"the hypervisor took {steal:.0%} of the CPU time"
        )


def test_cpu_frequency_below_ninety_percent_of_the_runs_highest():
    samples = [
        (10, cols(cpu_freq_hz=3.0 * GHZ)),
        (10, cols(cpu_freq_hz=2.71 * GHZ)),  # 90.3%: not affected
        (10, cols(cpu_freq_hz=2.69 * GHZ)),
        (10, cols(cpu_freq_hz=None)),
    ]  # 89.7%: affected
    v = verdict(samples, idle_cores=0, logical_cpus=2)
    [reason] = v["reasons"]
    assert reason["detector"] == "cpu_frequency" and reason["share"] == pytest.approx(0.25)
    assert (
        reason["text"] == "the CPU clock fell to 2.69 GHz from 3.00 GHz for 25% of the iterations"
    )
    steady = verdict([(10, cols(cpu_freq_hz=2.4 * GHZ))] * 3, idle_cores=0, logical_cpus=2)
    assert steady["verdict"] == "quiet"


def test_battery():
    v = verdict(
        [(5, cols(on_battery=True)), (15, cols(on_battery=False))], idle_cores=0, logical_cpus=2
    )
    assert v["verdict"] == "noisy" and v["reasons"][0]["share"] == pytest.approx(0.25)
    assert verdict([(5, cols(on_battery=None))], 0, 2)["verdict"] == "quiet"


def test_gpu_clock_events_count_only_slowdowns():
    import pynvml

    # the bits we call slowdowns are NVML's own
    assert {
        pynvml.nvmlClocksThrottleReasonHwThermalSlowdown,
        pynvml.nvmlClocksThrottleReasonSwThermalSlowdown,
        pynvml.nvmlClocksThrottleReasonHwPowerBrakeSlowdown,
        pynvml.nvmlClocksThrottleReasonHwSlowdown,
    } <= set(noise.GPU_SLOWDOWN_REASONS)
    assert noise.GPU_POWER_CAP == pynvml.nvmlClocksThrottleReasonSwPowerCap == 0x4
    idle_app_boost = (
        pynvml.nvmlClocksThrottleReasonGpuIdle
        | pynvml.nvmlClocksThrottleReasonApplicationsClocksSetting
        | pynvml.nvmlClocksThrottleReasonSyncBoost
    )
    assert noise.gpu_slowdowns(idle_app_boost) == []
    samples = [
        (4, cols(gpu_clock_event_mask=pynvml.nvmlClocksThrottleReasonSwThermalSlowdown | 1)),
        (6, cols(gpu_clock_event_mask=idle_app_boost)),
    ]
    v = verdict(samples, idle_cores=8, logical_cpus=16)
    assert v["reasons"] == [
        {
            "detector": "gpu_clock_events",
            "share": pytest.approx(0.4),
            "text": "the GPU was slowed (thermal (driver)) for 40% of the iterations",
        }
    ]


def test_a_gpu_held_at_its_power_limit_is_recorded_not_noisy():
    """Issue 25, defect 9: NVML's software power cap (0x4) is set on most RTX cards under
    steady full load; counted as a slowdown it made nearly every honest RTX run noisy. It is
    recorded (the share of steps), and noisy only if the SM clock then moves."""
    import pynvml

    cap = pynvml.nvmlClocksThrottleReasonSwPowerCap
    steady = [(10, cols(gpu_clock_event_mask=cap, gpu_sm_clock_mhz=2610))] * 9 + [
        (10, cols(gpu_clock_event_mask=0, gpu_sm_clock_mhz=2625))
    ]
    v = verdict(steady, idle_cores=8, logical_cpus=16)
    assert v["verdict"] == "quiet" and v["reasons"] == [] and v["minor"] == []
    assert v["power_capped_share"] == pytest.approx(0.9)
    assert noise.start_problems(cols(gpu_clock_event_mask=cap), 8, 16, None) == []
    # capped, and the clock fell to 2200 of 2625 MHz (83.8% < 90%) for 3 of the 10 samples
    moved = steady[:6] + [(10, cols(gpu_clock_event_mask=cap, gpu_sm_clock_mhz=2200))] * 3
    v = verdict(moved + steady[9:], idle_cores=8, logical_cpus=16)
    [reason] = v["reasons"]
    assert reason["detector"] == "gpu_clock" and reason["share"] == pytest.approx(0.3)
    assert reason["text"] == (
        "the GPU's SM clock fell to 2200 MHz from 2625 MHz for 30% of the iterations"
    )
    assert verdict([(10, cols())], 0, 2)["power_capped_share"] is None  # no NVML: unknown


# ---- the verdict ---------------------------------------------------------------------------------


def test_noisy_from_ten_percent_of_the_steps_weighted_by_steps():
    busy, calm = cols(other_cpu_cores=1.9), cols(other_cpu_cores=0.0)
    under = verdict([(9, busy), (91, calm)], idle_cores=0, logical_cpus=2)
    assert under["verdict"] == "quiet" and under["reasons"] == []
    assert under["minor"][0]["share"] == pytest.approx(0.09) and under[
        "share_affected"
    ] == pytest.approx(0.09)
    at = verdict([(10, busy), (90, calm)], idle_cores=0, logical_cpus=2)
    assert at["verdict"] == "noisy" and at["reasons"][0]["share"] == pytest.approx(0.10)
    # one long sample outweighs many short ones
    assert verdict([(1, busy)] * 5 + [(95, calm)], 0, 2)["share_affected"] == pytest.approx(0.05)


def test_share_affected_is_the_union_of_detectors():
    samples = [
        (10, cols(other_cpu_cores=1.9, on_battery=True)),
        (10, cols(on_battery=True)),
        (20, cols()),
    ]
    v = verdict(samples, idle_cores=0, logical_cpus=2)
    assert [r["detector"] for r in v["reasons"]] == ["other_processes", "battery"]
    assert v["share_affected"] == pytest.approx(0.5) and v["steps_sampled"] == 40


def test_no_sampled_steps_is_unknown():
    assert verdict([], 0, 2)["verdict"] == "unknown"
    assert verdict([(0, cols(other_cpu_cores=2.0))], 0, 2)["verdict"] == "unknown"


# ---- the start check -----------------------------------------------------------------------------


def test_start_problems_each_with_what_to_do():
    calm = cols(other_cpu_cores=0.2, load_1m=0.3, on_battery=False)
    assert noise.start_problems(calm, idle_cores=0, logical_cpus=2, governors={"performance"}) == []
    assert noise.start_problems(calm, 0, 2, governors=None) == []  # unreadable: no claim
    busy = cols(
        other_cpu_cores=1.7,
        load_1m=5.7,
        on_battery=True,
        cpu_steal_frac=0.2,
        gpu_clock_event_mask=0x40,
    )
    problems = noise.start_problems(
        busy, idle_cores=0, logical_cpus=2, governors={"powersave", "performance"}
    )
    assert problems[0].startswith("other processes are using 1.7 of 2 cores (load 5.7); wait")
    assert "20% of the CPU time (steal)" in problems[1]
    assert (
        "governor is performance/powersave" in problems[2]
        and "cpupower frequency-set -g performance" in problems[2]
    )
    assert problems[3] == "the machine is on battery; plug it in"
    assert "thermal (hardware)" in problems[4] and "nvidia-smi" in problems[4]


def test_governors_read_from_sysfs(tmp_path):
    assert noise.governors(str(tmp_path)) is None
    for cpu, gov in (("cpu0", "powersave"), ("cpu1", "performance"), ("cpu12", "powersave")):
        (tmp_path / cpu / "cpufreq").mkdir(parents=True)
        (tmp_path / cpu / "cpufreq" / "scaling_governor").write_text(gov + "\n")
    assert noise.governors(str(tmp_path)) == {"powersave", "performance"}


# ---- the sampler ---------------------------------------------------------------------------------


def rows(first, n, last=False):
    out = [{"iter": i, "step_time_s": 0.1} for i in range(first, first + n)]
    if last:
        out.append({"iter": first + n, "step_time_s": None})
    return out


def test_sampler_reads_once_per_interval_and_marks_the_windows_last_row():
    m = FakeMachine(other=1.8, dt=0.0)  # the clock moves only when we say
    s = noise.Sampler(m, logical_cpus=2, threads=2, last_iter=100, every_s=1.0, clock=m.clock)
    reads = m.n
    window = rows(0, 3)
    s.mark(window)
    assert m.n == reads and all(
        "other_cpu_cores" not in r for r in window
    )  # too soon: nothing read
    m.t += 1.0  # others 1.8 cores, this job 1.0 over that second
    window = rows(3, 2)
    s.mark(window)
    assert m.n == reads + 1
    assert (
        window[-1]["other_cpu_cores"] == pytest.approx(1.8) and "other_cpu_cores" not in window[0]
    )
    [(steps, sample)] = s.samples
    assert steps == 5 and sample == {
        c: window[-1][c] for c in noise.COLUMNS
    }  # the 5 steps since the first reading


def test_sampler_always_reads_at_the_last_row_and_counts_only_steps():
    m = FakeMachine(dt=0.0)
    s = noise.Sampler(m, logical_cpus=2, threads=1, last_iter=4, every_s=60.0, clock=m.clock)
    s.mark(rows(0, 4, last=True))  # iterations 0-3 and the final evaluation row 4
    assert [n for n, _ in s.samples] == [4]
    assert s.idle_cores == 1


def test_start_check_then_the_loop_starts_a_fresh_interval():
    m = FakeMachine(other=1.9, dt=1.0)
    s = noise.Sampler(m, logical_cpus=2, threads=2, last_iter=10, every_s=0.0, clock=m.clock)
    start = s.start_check({"powersave"})
    assert start["other_cpu_cores"] == pytest.approx(1.9) and start["governors"] == ["powersave"]
    assert start["warning"].startswith(
        "timings will be noisy: other processes are using 1.9 of 2 cores"
    )
    assert "governor is powersave" in start["warning"]
    m.other = 0.0  # the machine calms down once training starts
    for first in range(0, 10, 2):
        s.mark(rows(first, 2, last=first == 8))
    v = s.verdict()
    assert v["verdict"] == "quiet" and v["steps_sampled"] == 10 and v["samples"] == 5


# ---- in a real training run ------------------------------------------------------------------------


class Log:
    def __init__(self):
        self.lines = []

    def update(self, row, total):
        pass

    def log(self, text):
        self.lines.append(text)


@pytest.mark.parametrize("other", [1.8, 0.1])
def test_a_run_records_its_samples_and_verdict(tmp_path, monkeypatch, other):
    """The smoke run on a fake 2-CPU machine whose other processes use `other` cores: the
    rows carry the samples, the metadata the verdict, and a busy start gets one warning."""
    from nanobench.run.scenario import load
    from nanobench.run.train import RunOptions, train
    from nanobench.store import results

    machine = FakeMachine(other=other, dt=0.5, tick=0.1, on_battery=False)
    monkeypatch.setattr(
        noise,
        "watch",
        lambda device, *, threads, last_iter, ddp=None: noise.Sampler(
            machine,
            logical_cpus=2,
            threads=2,
            last_iter=last_iter,
            every_s=1.0,
            clock=machine.clock,
        ),
    )
    monkeypatch.setattr(noise, "governors", lambda: None)
    log = Log()
    outcome = train(load("smoke"), RunOptions(out_dir=str(tmp_path), threads=1), progress=log)
    run = results.read_run(outcome.path)
    sampled = run.rows.dropna(subset=["other_cpu_cores"])
    # the fake clock moves 0.1 s per host read and 0.5 s per reading: one about every 10 steps
    assert len(sampled) >= 2 and sampled["iter"].iloc[-1] == 30  # the last row always gets one
    assert sampled["other_cpu_cores"].tolist() == pytest.approx([other] * len(sampled))
    assert not sampled["on_battery"].any()
    meta = run.meta["noise"]
    assert meta["steps_sampled"] == 30
    if other > 0.5:
        assert meta["verdict"] == "noisy" and meta["reasons"][0]["detector"] == "other_processes"
        assert meta["reasons"][0]["share"] == 1.0
        assert [line for line in log.lines if line.startswith("warning: ")] == [
            f"warning: {meta['at_start']['warning']}"
        ]
        assert "1.8 of 2 cores" in meta["at_start"]["warning"]
    else:
        assert meta["verdict"] == "quiet" and meta["at_start"]["warning"] is None
        assert not any(line.startswith("warning") for line in log.lines)


@pytest.mark.parametrize(
    "fields",
    [
        {
            "user": 10.0,
            "nice": 1.0,
            "system": 2.0,
            "idle": 80.0,
            "iowait": 1.0,
            "irq": 0.5,
            "softirq": 0.5,
            "steal": 5.0,
            "guest": 0.0,
            "guest_nice": 0.0,
        },  # Linux
        {"user": 10.0, "nice": 1.0, "system": 3.0, "idle": 86.0},  # macOS: no irq, steal or iowait
        {
            "user": 11.0,
            "system": 3.0,
            "idle": 86.0,
            "interrupt": 0.5,
            "dpc": 0.5,
        },  # Windows: interrupt and dpc inside system
    ],
)
def test_system_reader_on_each_os_cpu_times(monkeypatch, fields):
    """The reader takes psutil's cpu_times as each OS spells them; no load average on Windows."""
    import collections

    import psutil

    times = collections.namedtuple("scputimes", list(fields))(**fields)
    monkeypatch.setattr(psutil, "cpu_times", lambda: times)
    monkeypatch.setattr(psutil, "cpu_freq", lambda: None)
    monkeypatch.setattr(psutil, "sensors_battery", lambda: None)
    if "interrupt" in fields:
        monkeypatch.delattr(noise.os, "getloadavg")
    r = noise.SystemReader()()
    assert r.cpu_busy_s == pytest.approx(14.0) and r.cpu_total_s == pytest.approx(
        14.0 + 86.0 if "steal" not in fields else 100.0
    )
    assert r.cpu_steal_s == fields.get("steal") and r.cpu_freq_hz is None and r.on_battery is None
    assert (r.load_1m is None) == ("interrupt" in fields)
