"""A result file's metadata, parsed once when the file is read.

On disk the metadata is the JSON object under the parquet key `nanobench` (schema_version 1,
docs/results.md); nothing here changes it. `RunMeta.parse` turns it into typed fields for what
analysis and presentation read, with the defaults they always applied, so a hand-made or old
file with fewer keys reads as before. Everything else stays in `raw`, the dict as written.

A field is None where the file does not say (a CPU run has no GPU driver, an old file no
flops); a section that is present but not a JSON object is bad input naming the file and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nanobench.errors import InputError


@dataclass(frozen=True)
class DeviceInfo:
    spec: str | None  # what the user asked for: "cuda:1"
    type: str | None  # "cpu", "cuda", "mps"
    name: str | None  # "AMD EPYC", "NVIDIA H100 80GB HBM3"


@dataclass(frozen=True)
class DatasetInfo:
    name: str | None
    sha256: str | None  # the identity of the corpus: runs on different bytes are never compared


@dataclass(frozen=True)
class OptionsInfo:
    """The run options as recorded (`options`): what the user chose."""

    device: str | None
    dtype: str | None
    compile: bool
    seed: int | None
    threads: int | None
    max_iters: int | None
    overrides: tuple[str, ...]
    best: bool = False  # `run --best`: the speed settings came from the device's tune record


@dataclass(frozen=True)
class EnvironmentInfo:
    """The machine and software a run ran on (`environment`, measure/environment.collect)."""

    hostname: str | None
    os: str | None
    python: str | None
    torch: str | None
    cuda_runtime: str | None
    cpu_model: str | None
    cpu_physical_cores: int | None
    torch_num_threads: int | None
    gpu_name: str | None
    gpu_driver: str | None  # NVIDIA driver, from the NVML state at start (CUDA runs with NVML only)
    git_commit: str | None
    git_dirty: bool | None
    float32_matmul_precision: str | None  # from the run's `precision` flags


@dataclass(frozen=True)
class Peak:
    flops: float | None  # FLOP/s; None where no peak is known
    source: str | None  # where the figure came from, in words


@dataclass(frozen=True)
class PeakFlops:
    spec: Peak  # the datasheet's
    measured: Peak  # a timed matmul on this host
    used_for_mfu: Peak  # the one MFU was computed with (null when spec and measured contradict)


@dataclass(frozen=True)
class ResumedFrom:
    """Lineage of a run that continued another's checkpoint: its rows start at `iter`."""

    run_id: str | None
    iter: int | None
    device_type: str | None
    dtype: str | None


@dataclass(frozen=True)
class ImportedInfo:
    """A run imported from another trainer's log (`imported`, nanobench/ingest)."""

    format: str | None  # "nanogpt", "llm.c", "csv"
    truncated_at_iter: int | None  # where a log cut off before max_iters ends


@dataclass(frozen=True)
class RunMeta:
    run_id: str
    status: str  # one of results.STATUSES, "?" when absent
    status_reason: str | None
    group_id: str | None
    scenario: dict  # the scenario as run (run/scenario.Scenario.to_dict())
    scenario_name: str | None
    val_loss_targets: tuple[float, ...]  # hardest (lowest) last
    options: OptionsInfo
    device: DeviceInfo
    dataset: DatasetInfo
    environment: EnvironmentInfo
    flops_per_iter: float | None
    peak_flops: PeakFlops | None
    energy_source: str | None  # "nvml", "rapl", None (with energy_reason saying why not)
    energy_reason: str | None
    resumed_from: ResumedFrom | None
    summary: dict | None  # the writer's own summary; analysis recomputes from the rows
    sample: str | None  # text generated from the final weights
    started_at: str | None
    finished_at: str | None
    raw: dict = field(repr=False, compare=False)  # the metadata exactly as on disk
    imported: ImportedInfo | None = None

    @property
    def shown_status(self) -> str:
        """The status as shown: an imported log cut off mid-run reads `imported (truncated at iteration N)`."""
        cut = self.imported.truncated_at_iter if self.imported else None
        return f"{self.status} (truncated at iteration {cut})" if cut is not None else self.status

    @classmethod
    def parse(cls, raw: dict, path: Path | str) -> RunMeta:
        """Typed fields from a result's metadata dict (already version-checked)."""
        section = _sections(raw, path)
        scen, opts, dev, data, env = (
            section(k) for k in ("scenario", "options", "device", "dataset", "environment")
        )
        targets = section("targets", scen).get("val_loss") or []
        nvml = section("gpu_state_at_start", env, "environment.")
        git = section("git", env, "environment.")
        flops = section("flops")
        parent = section("resumed_from")
        parent_device = parent.get("device")
        return cls(
            run_id=str(raw.get("run_id", Path(path).stem)),
            status=str(raw.get("status", "?")),
            status_reason=raw.get("status_reason"),
            group_id=raw.get("group_id"),
            scenario=scen,
            scenario_name=scen.get("name"),
            val_loss_targets=tuple(sorted((float(t) for t in targets), reverse=True)),
            options=OptionsInfo(
                device=opts.get("device"),
                dtype=opts.get("dtype"),
                compile=bool(opts.get("compile", False)),
                seed=opts.get("seed"),
                threads=opts.get("threads"),
                max_iters=opts.get("max_iters"),
                overrides=tuple(opts.get("overrides") or ()),
                best=bool(opts.get("best", False)),
            ),
            device=DeviceInfo(dev.get("spec"), dev.get("type"), dev.get("name")),
            dataset=DatasetInfo(data.get("name"), data.get("sha256")),
            environment=EnvironmentInfo(
                hostname=env.get("hostname"),
                os=env.get("os"),
                python=env.get("python"),
                torch=env.get("torch"),
                cuda_runtime=env.get("cuda_runtime"),
                cpu_model=env.get("cpu_model"),
                cpu_physical_cores=env.get("cpu_physical_cores"),
                torch_num_threads=env.get("torch_num_threads"),
                gpu_name=env.get("gpu_name"),
                gpu_driver=nvml.get("driver"),
                git_commit=git.get("commit"),
                git_dirty=git.get("dirty"),
                float32_matmul_precision=section("precision").get("float32_matmul_precision"),
            ),
            flops_per_iter=flops.get("per_iter"),
            peak_flops=_peak_flops(section("peak_flops")),
            energy_source=section("energy").get("source"),
            energy_reason=section("energy").get("reason"),
            resumed_from=None
            if not parent
            else ResumedFrom(
                parent.get("run_id"),
                parent.get("iter"),
                # written as the parent's device record ({spec, type, name}); a bare string in hand-made files
                parent_device.get("type", "?")
                if isinstance(parent_device, dict)
                else parent_device,
                parent.get("dtype"),
            ),
            summary=raw.get("summary"),
            sample=raw.get("sample") if isinstance(raw.get("sample"), str) else None,
            started_at=raw.get("started_at"),
            finished_at=raw.get("finished_at"),
            raw=raw,
            imported=None
            if not section("imported")
            else ImportedInfo(
                section("imported").get("format"), section("imported").get("truncated_at_iter")
            ),
        )


def _sections(raw: dict, path):
    """section(key, within=raw, prefix=""): the JSON object under key; {} when absent or null."""

    def section(key: str, within: dict | None = None, prefix: str = "") -> dict:
        value = (raw if within is None else within).get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InputError(
                f"{path}: metadata key '{prefix}{key}' is {type(value).__name__}, expected an object; "
                f"the file is damaged"
            )
        return value

    return section


def _peak_flops(section: dict) -> PeakFlops | None:
    if not section:
        return None

    def peak(key: str) -> Peak:
        p = section.get(key) if isinstance(section.get(key), dict) else {}
        return Peak(p.get("flops"), p.get("source"))

    return PeakFlops(peak("spec"), peak("measured"), peak("used_for_mfu"))
