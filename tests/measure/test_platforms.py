"""CPU facts, peaks, energy, --compile and the data-parallel backend on macOS and Windows,
from this Linux machine: the OS's answers (sysctl, ioreg, the registry, psutil) are faked
with outputs of the shape those tools print, and sys.platform says which OS it is."""

import sys
import types
from collections import namedtuple

import psutil  # imported before any test pretends to be another OS
import pytest

from nanobench.measure import environment, host, metrics, peaks
from nanobench.measure.device import Device
from nanobench.measure.precision import Precision

# `sysctl machdep.cpu hw` on an M2 Pro (abridged: the keys host reads, plus neighbours)
M2_PRO_SYSCTL = """\
machdep.cpu.brand_string: Apple M2 Pro
machdep.cpu.core_count: 12
hw.ncpu: 12
hw.physicalcpu: 12
hw.nperflevels: 2
hw.perflevel0.physicalcpu: 8
hw.perflevel0.name: Performance
hw.perflevel1.physicalcpu: 4
hw.perflevel1.name: Efficiency
hw.optional.AdvSIMD: 1
hw.optional.arm.FEAT_BF16: 1
hw.optional.arm.FEAT_I8MM: 1
hw.optional.arm.FEAT_FP16: 1
hw.optional.arm.FEAT_SME: 0
hw.optional.avx512f: 0
"""
# the same on a 2019 Mac Pro (Xeon W, Intel)
XEON_MAC_SYSCTL = """\
machdep.cpu.brand_string: Intel(R) Xeon(R) W-3245 CPU @ 3.20GHz
machdep.cpu.vendor: GenuineIntel
machdep.cpu.family: 6
hw.physicalcpu: 16
hw.cpufrequency_max: 3200000000
hw.optional.avx1_0: 1
hw.optional.avx2_0: 1
hw.optional.fma: 1
hw.optional.avx512f: 1
"""
IOREG_AGX = """\
+-o AGXAcceleratorG14X  <class AGXAcceleratorG14X, id 0x1000003a2, registered, matched, active, busy 0 (0 ms), retain 41>
    {
      "gpu-core-count" = 19
      "model" = "Apple M2 Pro"
    }
"""
PROFILER_DISPLAYS = """\
Graphics/Displays:

    Apple M2 Pro:

      Chipset Model: Apple M2 Pro
      Type: GPU
      Total Number of Cores: 19
"""
freq = namedtuple("scpufreq", "current min max")


def pretend(
    monkeypatch,
    os_name: str,
    machine: str,
    system: str,
    *,
    sysctl: str = "",
    commands=None,
    max_mhz: float | None = None,
    cores: int | None = None,
):
    """This process believes it runs on `os_name`; `commands` maps a probe command's name to its output."""
    for cached in (host._sysctl, host._windows_cpu, host.apple_gpu_cores):
        cached.cache_clear()  # and again when the test ends (fresh_caches)
    monkeypatch.setattr(sys, "platform", os_name)
    monkeypatch.setattr(host, "_cpuinfo", lambda: {})  # no /proc/cpuinfo off Linux
    outputs = {"sysctl": sysctl, **(commands or {})}
    monkeypatch.setattr(host, "_run", lambda cmd: outputs.get(cmd[0], ""))
    monkeypatch.setattr(host.platform, "machine", lambda: machine)
    monkeypatch.setattr(host.platform, "system", lambda: system)
    monkeypatch.setattr(psutil, "cpu_freq", lambda: freq(max_mhz, 0, max_mhz) if max_mhz else None)
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: cores)


@pytest.fixture(autouse=True)
def fresh_caches():
    yield
    for cached in (host._sysctl, host._windows_cpu, host.apple_gpu_cores):
        cached.cache_clear()


def test_apple_silicon_cpu_facts_and_spec_peak(monkeypatch):
    pretend(monkeypatch, "darwin", "arm64", "Darwin", sysctl=M2_PRO_SYSCTL, max_mhz=3504, cores=12)
    assert host.cpu_model() == "Apple M2 Pro"
    assert host.cpu_flags() == ["asimd", "asimdhp", "bf16", "i8mm"]  # set to 0: not a flag
    assert host.compute_cores() == (8, "performance cores; 4 efficiency cores not counted")
    peak = peaks.cpu_spec_peak("fp32", threads=12)
    assert peak.flops == pytest.approx(
        8 * 3.504e9 * 32
    )  # 8 P-cores x clock x four 128-bit FMA pipes
    assert "efficiency cores not counted" in peak.source and "Apple" in peak.source
    assert (
        peaks.cpu_spec_peak("bf16", threads=8).flops is None
    )  # FEAT_BF16 has no stated rate: unknown, not guessed


def test_apple_m4_clock_in_the_wrong_unit_is_unknown(monkeypatch):
    pretend(
        monkeypatch, "darwin", "arm64", "Darwin", sysctl=M2_PRO_SYSCTL, max_mhz=4.0, cores=10
    )  # psutil issue 2642
    assert host.cpu_clock_hz()[0] is None
    assert "implausible" in peaks.cpu_spec_peak("fp32").source


def test_intel_mac_cpu_facts_and_spec_peak(monkeypatch):
    pretend(
        monkeypatch, "darwin", "x86_64", "Darwin", sysctl=XEON_MAC_SYSCTL, max_mhz=4400, cores=16
    )
    assert host.cpu_model().startswith("Intel(R) Xeon(R) W-3245")
    assert host.cpu_flags() == ["avx", "avx2", "avx512f", "fma"]
    assert (host.cpu_vendor(), host.cpu_family()) == ("GenuineIntel", 6)
    assert host.compute_cores() == (16, "physical")
    assert peaks.cpu_spec_peak("fp32", threads=16).flops == pytest.approx(16 * 4.4e9 * 64)


class FakeWinreg(types.ModuleType):
    """Stands for Windows' winreg: one key, processor 0, as an AMD Ryzen 9 7950X describes itself."""

    HKEY_LOCAL_MACHINE = "HKLM"
    VALUES = {
        "ProcessorNameString": "AMD Ryzen 9 7950X 16-Core Processor          ",
        "VendorIdentifier": "AuthenticAMD",
        "Identifier": "AMD64 Family 25 Model 97 Stepping 2",
        "~MHz": 4500,
    }

    def __init__(self):
        super().__init__("winreg")
        self.opened = []

    def OpenKey(self, root, path):
        self.opened.append((root, path))
        reg = self

        class Key:
            def __enter__(self):
                return reg

            def __exit__(self, *exc):
                return False

        return Key()

    def QueryValueEx(self, key, name):
        if name not in self.VALUES:
            raise FileNotFoundError(name)
        return self.VALUES[name], 1


def test_windows_cpu_facts_and_spec_peak(monkeypatch):
    reg = FakeWinreg()
    monkeypatch.setitem(sys.modules, "winreg", reg)
    pretend(monkeypatch, "win32", "AMD64", "Windows", max_mhz=4501, cores=16)
    present = {39, 40, 41}  # AVX, AVX2, AVX-512F
    monkeypatch.setattr(host, "_windows_feature_present", lambda feature: feature in present)
    assert host.cpu_model() == "AMD Ryzen 9 7950X 16-Core Processor"
    assert reg.opened == [("HKLM", r"HARDWARE\DESCRIPTION\System\CentralProcessor\0")]
    assert (host.cpu_vendor(), host.cpu_family()) == ("AuthenticAMD", 25)
    assert host.cpu_flags() == ["avx", "avx2", "avx512f", "fma"]
    peak = peaks.cpu_spec_peak("fp32", threads=16)
    assert peak.flops == pytest.approx(16 * 4.501e9 * 32)  # Zen 4 runs AVX-512 on 256-bit units
    assert "Windows reports the base clock" in peak.source


def test_windows_without_avx2_has_no_peak_and_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "winreg", FakeWinreg())
    pretend(monkeypatch, "win32", "AMD64", "Windows", max_mhz=3000, cores=4)
    monkeypatch.setattr(host, "_windows_feature_present", lambda feature: False)
    peak = peaks.cpu_spec_peak("fp32")
    assert peak.flops is None and "no AVX-512, AVX2+FMA or NEON" in peak.source


def test_mps_spec_peak_from_the_chip_and_its_gpu_cores(monkeypatch):
    mps = Device("mps", None, "Apple GPU (mps)")  # stands for an MPS device: only its kind is read
    pretend(
        monkeypatch,
        "darwin",
        "arm64",
        "Darwin",
        sysctl=M2_PRO_SYSCTL,
        commands={"ioreg": IOREG_AGX},
    )
    assert peaks.spec_peak(mps, Precision("fp32")).flops == pytest.approx(19 * 0.36e12)
    pretend(
        monkeypatch,
        "darwin",
        "arm64",
        "Darwin",
        sysctl=M2_PRO_SYSCTL,
        commands={"system_profiler": PROFILER_DISPLAYS},
    )  # ioreg without the key: the slower source
    assert host.apple_gpu_cores() == 19
    pretend(monkeypatch, "darwin", "arm64", "Darwin", sysctl=M2_PRO_SYSCTL)
    peak = peaks.spec_peak(mps, Precision("fp32"))
    assert peak.flops is None and "GPU core count unknown" in peak.source


@pytest.mark.parametrize(
    "os_name, why",
    [("darwin", "powermetrics, which needs root"), ("win32", "no CPU energy counter")],
)
def test_cpu_energy_is_null_with_the_reason_off_linux(monkeypatch, tmp_path, os_name, why):
    (
        tmp_path / "intel-rapl:0"
    ).mkdir()  # even a readable-looking tree is not Linux's powercap there
    monkeypatch.setattr(sys, "platform", os_name)
    meter = metrics.rapl_meter(tmp_path)
    assert meter.read_j() is None and why in meter.describe()["reason"]


def test_cuda_ranks_use_gloo_off_linux(monkeypatch):
    gpu = Device(
        "cuda", 0, "NVIDIA GeForce RTX 4070 Ti", (8, 9), True
    )  # stands for a GPU this machine lacks
    assert gpu.ddp_backend == "nccl"
    monkeypatch.setattr(sys, "platform", "win32")
    assert gpu.ddp_backend == "gloo" and Device("cpu", None, "a CPU").ddp_backend == "gloo"


def test_compile_refused_in_one_line_without_a_cpp_compiler(nb, tmp_path):
    """torch's own compiler search, run before the first step; no traceback from inductor."""
    out = nb(
        "run",
        "smoke",
        "--compile",
        "--max-iters",
        "2",
        "--out",
        tmp_path,
        env={"CXX": "no-such-c++"},
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert (
        "--compile: torch.compile on the CPU needs a C++ compiler" in line and "no-such-c++" in line
    )
    assert not list(tmp_path.glob("*.parquet"))


def test_compile_on_cuda_without_triton_says_what_to_install(monkeypatch):
    import torch.utils._triton as triton_check

    gpu = Device("cuda", 0, "NVIDIA GeForce RTX 4070 Ti", (8, 9), True)
    monkeypatch.setattr(triton_check, "has_triton_package", lambda: False)  # a stock Windows torch
    monkeypatch.setattr(sys, "platform", "win32")
    assert "triton-windows" in environment.compile_problem(gpu)
