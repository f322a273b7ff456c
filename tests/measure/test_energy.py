"""Energy and device memory without a GPU: RAPL's counter wrap on a real sysfs-shaped tree,
the NVML-absent path, and interpolation within a read window."""

import pytest

from nanobench.measure import metrics, nvml
from nanobench.measure.device import Device


def stand_in_gpu(index: int = 0) -> Device:
    """Stands for a CUDA GPU, which this machine lacks: NVML and the meters read only its index."""
    return Device("cuda", index, "NVIDIA stand-in (no GPU here)")


def test_rapl_delta_handles_the_wrap():
    assert metrics.rapl_delta_uj(1_000, 5_000, 262_143_328_850) == 4_000
    # counter at 262_143_328_000 wraps to 0 past max_energy_range_uj, then reaches 2_000
    assert metrics.rapl_delta_uj(262_143_328_000, 2_000, 262_143_328_850) == 850 + 2_000


def make_powercap(root, packages):
    """A powercap tree as Linux lays it out: package zones plus a core subzone to ignore."""
    for name, (energy_uj, max_uj) in packages.items():
        zone = root / name
        zone.mkdir(parents=True)
        (zone / "energy_uj").write_text(f"{energy_uj}\n")
        (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    sub = root / "intel-rapl:0:0"
    sub.mkdir()
    (sub / "energy_uj").write_text("999999999\n")
    (sub / "max_energy_range_uj").write_text("1000000000\n")


def test_rapl_meter_sums_packages_across_a_wrap(tmp_path):
    make_powercap(
        tmp_path, {"intel-rapl:0": (9_000_000, 10_000_000), "intel-rapl:1": (100, 10_000_000)}
    )
    meter = metrics.rapl_meter(tmp_path)
    assert meter.source == "rapl" and meter.describe() == {
        "source": "rapl",
        "reason": None,
        "zones": ["intel-rapl:0", "intel-rapl:1"],
        "what": "CPU package energy (powercap energy_uj)",
    }
    assert meter.read_j() == 0.0
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("9500000\n")  # +0.5 J
    (tmp_path / "intel-rapl:1" / "energy_uj").write_text("2000100\n")  # +2 J
    assert meter.read_j() == pytest.approx(2.5)
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text(
        "500000\n"
    )  # wrapped: +0.5 J to the top, +0.5 J after
    assert meter.read_j() == pytest.approx(3.5)


def test_rapl_absent_or_empty_gives_a_reason(tmp_path):
    absent = metrics.rapl_meter(tmp_path / "no-powercap")
    assert absent.read_j() is None and "absent" in absent.describe()["reason"]
    (tmp_path / "empty").mkdir()
    empty = metrics.rapl_meter(tmp_path / "empty")
    assert empty.read_j() is None and "no RAPL package zones" in empty.reason


def test_the_cpu_reads_rapl_from_the_powercap_tree(monkeypatch):
    """The CPU device's meter is rapl_meter over Linux's tree (stood in for: the meter's
    reading of a tree is checked above on real files)."""
    monkeypatch.setattr(metrics, "rapl_meter", lambda: "the rapl meter")
    assert Device.cpu().energy_meter() == "the rapl meter"
    meter = Device("mps", None, "Apple M2").energy_meter()
    assert meter.read_j() is None and meter.reason == "no energy counter readable for mps devices"


def test_rapl_readable_only_by_root_says_how_to_read_it(tmp_path, monkeypatch):
    """energy_uj is mode 0400 since Linux 5.10; this test runs as root, so the refusal an
    ordinary user gets is stood in for."""
    make_powercap(tmp_path, {"intel-rapl:0": (1, 10)})

    def refused(zones):
        raise PermissionError(13, "Permission denied", str(zones[0] / "energy_uj"))

    monkeypatch.setattr(metrics, "RaplEnergyMeter", refused)
    meter = metrics.rapl_meter(tmp_path)
    assert meter.read_j() is None and meter.reason == (
        f"{tmp_path}/intel-rapl:0/energy_uj is readable only by root (Linux 5.10+); "
        f"run as root or `sudo chmod o+r {tmp_path}/intel-rapl:*/energy_uj`"
    )


def test_rapl_unreadable_names_the_cause(tmp_path):
    make_powercap(tmp_path, {"intel-rapl:0": (1, 10)})
    (tmp_path / "intel-rapl:0" / "max_energy_range_uj").write_text("not a number\n")
    meter = metrics.rapl_meter(tmp_path)
    assert meter.read_j() is None and meter.reason.startswith("RAPL unreadable: invalid literal")


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_no_cpu_energy_where_the_os_keeps_it_from_us(platform, tmp_path, monkeypatch):
    make_powercap(tmp_path, {"intel-rapl:0": (1, 10)})  # even with a tree present
    monkeypatch.setattr(metrics.sys, "platform", platform)
    meter = metrics.rapl_meter(tmp_path)
    assert meter.read_j() is None and meter.reason == metrics.NO_CPU_ENERGY[platform]
    assert meter.describe() == {"source": None, "reason": metrics.NO_CPU_ENERGY[platform]}


@pytest.fixture
def no_nvml_driver(monkeypatch):
    """NVML as on a machine without the NVIDIA driver (which is what this machine is)."""
    import pynvml

    def init():
        raise pynvml.NVMLError_LibraryNotFound()

    monkeypatch.setattr(pynvml, "nvmlInit", init)


def test_nvml_absent_means_null_energy_and_device_memory_with_reason(no_nvml_driver):
    cuda = stand_in_gpu()
    with pytest.raises(nvml.NvmlUnavailable, match="no NVIDIA driver"):
        nvml.handle(0)
    meter = cuda.energy_meter()
    assert meter.read_j() is None and "NVML library not found" in meter.describe()["reason"]
    assert cuda.device_memory_reader()() is None
    assert nvml.gpu_state(cuda) == {
        "nvml": None,
        "reason": "NVML library not found (no NVIDIA driver on this machine)",
    }


def test_one_nvml_handle_per_device(monkeypatch):
    """The energy meter, the device-memory reader and the GPU state share one handle."""
    opened = []

    class Driver:  # stands for pynvml on a machine with a GPU
        NVMLError = RuntimeError

        def nvmlDeviceGetTotalEnergyConsumption(self, handle):
            return 1_000

        def nvmlDeviceGetMemoryInfo(self, handle):
            return type("Memory", (), {"used": 123, "total": 456})()

    monkeypatch.setattr(
        nvml, "handle", lambda index: opened.append(index) or (Driver(), f"gpu{index}")
    )
    cuda = stand_in_gpu(3)
    assert cuda.energy_meter().read_j() == 0.0
    assert cuda.device_memory_reader()() == 123
    assert cuda.nvml() == cuda.nvml()
    assert opened == [3]


def test_nvml_energy_meter_differences_millijoules():
    class Counter:  # stands for a GPU driver's nvmlDeviceGetTotalEnergyConsumption
        mj = 5_000_000

        def nvmlDeviceGetTotalEnergyConsumption(self, handle):
            assert handle == "gpu0"
            return self.mj

    counter = Counter()
    meter = metrics.NvmlEnergyMeter(counter, "gpu0")
    counter.mj += 12_345
    assert meter.read_j() == pytest.approx(12.345)
    assert meter.describe() == {
        "source": "nvml",
        "reason": None,
        "what": "GPU board energy (nvmlDeviceGetTotalEnergyConsumption)",
    }


def test_energy_is_interpolated_in_wall_time_within_a_window():
    rows = [{"wall_time_s": 1.0}, {"wall_time_s": 1.5}, {"wall_time_s": 2.0}, {"wall_time_s": None}]
    metrics.interpolate_energy(rows, (1.0, 100.0), (2.0, 300.0))
    assert [r["energy_j"] for r in rows] == [100.0, 200.0, 300.0, 300.0]
    # a row outside the window is held at its edge; a window of no time takes the new reading
    outside = [{"wall_time_s": 0.5}, {"wall_time_s": 2.5}]
    metrics.interpolate_energy(outside, (1.0, 100.0), (2.0, 300.0))
    assert [r["energy_j"] for r in outside] == [100.0, 300.0]
    still = [{"wall_time_s": 2.0}]
    metrics.interpolate_energy(still, (2.0, 100.0), (2.0, 300.0))
    assert still[0]["energy_j"] == 300.0


def test_cpu_memory_sample_has_no_reserved_or_device_counter():
    cpu = Device.cpu()
    mem, peak, reserved = cpu.memory_sample()
    assert 0 < mem <= peak and reserved is None
    assert cpu.device_memory_reader()() is None


def test_nvml_error_mid_run_costs_one_sample_not_the_run():
    import pynvml

    class Flaky:  # a driver that answers once, then fails (GPU fell off the bus)
        calls = 0

        def nvmlDeviceGetTotalEnergyConsumption(self, handle):
            self.calls += 1
            if self.calls > 1:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
            return 1_000

    assert metrics.NvmlEnergyMeter(Flaky(), "gpu0").read_j() is None
