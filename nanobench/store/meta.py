"""A result file's metadata, parsed once when the file is read.

On disk the metadata is the JSON object under the parquet key `nanobench` (schema_version 1,
docs/results.md); nothing here changes it. `RunMeta.parse` turns it into typed fields for what
analysis and presentation read, with the defaults they always applied, so a hand-made or old
file with fewer keys reads as before. Everything else stays in `raw`, the dict as written.

A field is None where the file does not say (a CPU run has no GPU driver, an old file no
flops); a section that is present but not a JSON object is bad input naming the file and key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nanobench.errors import InputError


@dataclass(frozen=True)
class DeviceInfo:
    text: str | None  # the device as the user wrote it: "cuda:1" (recorded under the key `spec`)
    type: str | None  # "cpu", "cuda", "mps"
    name: str | None  # "AMD EPYC", "NVIDIA H100 80GB HBM3"


@dataclass(frozen=True)
class DatasetInfo:
    name: str | None
    sha256: str | None  # the identity of the corpus: runs on different bytes are never compared


@dataclass(frozen=True, order=True)
class Settings:
    """A run's speed settings: how a step is executed, never what it computes (run/settings.py
    applies them, `nanobench tune` searches them). The names and defaults are RunOptions' and
    the keys a result records under `options`: `Settings()` is what `nanobench run` does when
    given no option. They are defined here, in the store, because a result file is read back
    as them (`OptionsInfo.settings`): a key a file lacks was not a setting yet when it ran, so
    it reads as its default."""

    dtype: str = "fp32"
    compile: bool = False
    compile_mode: str | None = None
    threads: int | None = None  # None: torch's choice
    optimizer: str = "auto"
    sdpa: str = "auto"

    @classmethod
    def recorded(cls, options: dict) -> Settings:
        """The settings in a result's `options` section (defaults for what it lacks)."""
        return cls(
            dtype=str(options.get("dtype") or "fp32"),
            compile=bool(options.get("compile", False)),
            compile_mode=options.get("compile_mode"),
            threads=options.get("threads"),
            optimizer=options.get("optimizer") or "auto",
            sdpa=options.get("sdpa") or "auto",
        )

    def options(self) -> dict:
        """As RunOptions keyword arguments (and as recorded in a result's `options`)."""
        return asdict(self)

    def changed(self) -> dict:
        """The settings that differ from the defaults."""
        default = Settings()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    def label(self) -> str:
        """'default', or the changed settings as flags: '--threads 1 --optimizer foreach'."""
        flags = []
        for key, value in self.changed().items():
            flag = "--" + key.replace("_", "-")
            flags.append(
                flag if value is True else f"--no-{key}" if value is False else f"{flag} {value}"
            )
        return " ".join(flags) or "default"

    def describe(self) -> str:
        """In words: 'bf16, compiled (max-autotune), 4 threads, AdamW fused, SDPA auto'."""
        mode = self.compile_mode
        compiled = "compiled" + (f" ({mode})" if mode and mode != "default" else "")
        return ", ".join(
            (
                self.dtype,
                compiled if self.compile else "eager",
                f"{self.threads} threads" if self.threads else "default threads",
                f"AdamW {self.optimizer}",
                f"SDPA {self.sdpa}",
            )
        )


@dataclass(frozen=True)
class OptionsInfo:
    """The run options as recorded (`options`): what the user chose."""

    device: str | None
    settings: Settings
    seed: int | None
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
class MachineInfo:
    """The machine a run ran on: its hardware fingerprint (never the host name) and two short
    ids derived from it (`machine_fingerprint`). `hardware_id` is equal for two machines of the
    same hardware; `machine_id` also takes the machine's install token, so two machines of one
    kind stay two while one machine keeps its id whatever its host name."""

    fingerprint: dict  # FINGERPRINT_KEYS -> value (None where not known)
    install: str | None  # a salted hash of the OS's machine id, or nanobench's own token
    hardware_id: str
    machine_id: str
    source: str  # "recorded", "derived from the environment", "derived from the device name"


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
    machine: MachineInfo | None = None

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
        environment = _environment(section, env)
        flops = section("flops")
        parent = section("resumed_from")
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
                settings=Settings.recorded(opts),
                seed=opts.get("seed"),
                max_iters=opts.get("max_iters"),
                overrides=tuple(opts.get("overrides") or ()),
                best=bool(opts.get("best", False)),
            ),
            device=DeviceInfo(dev.get("spec"), dev.get("type"), dev.get("name")),
            dataset=DatasetInfo(data.get("name"), data.get("sha256")),
            environment=environment,
            flops_per_iter=flops.get("per_iter"),
            peak_flops=_peak_flops(section("peak_flops")),
            energy_source=section("energy").get("source"),
            energy_reason=section("energy").get("reason"),
            resumed_from=_resumed_from(parent),
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
            machine=_machine(section("machine"), env, dev, path),
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


def _environment(section, env: dict) -> EnvironmentInfo:
    """The `environment` section typed; the GPU driver and git state are sections within it,
    the matmul precision the run's own `precision` section."""
    nvml = section("gpu_state_at_start", env, "environment.")
    git = section("git", env, "environment.")
    return EnvironmentInfo(
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
    )


def _resumed_from(parent: dict) -> ResumedFrom | None:
    if not parent:
        return None
    device = parent.get("device")
    return ResumedFrom(
        parent.get("run_id"),
        parent.get("iter"),
        # written as the parent's device record ({spec, type, name}); a bare string in hand-made files
        device.get("type", "?") if isinstance(device, dict) else device,
        parent.get("dtype"),
    )


def _peak_flops(section: dict) -> PeakFlops | None:
    if not section:
        return None

    def peak(key: str) -> Peak:
        p = section.get(key) if isinstance(section.get(key), dict) else {}
        return Peak(p.get("flops"), p.get("source"))

    return PeakFlops(peak("spec"), peak("measured"), peak("used_for_mfu"))


# ---- the machine fingerprint ----------------------------------------------------------------
# What identifies a machine's hardware. Never the host name (users share "localhost" or "vm"),
# nothing that changes on a reboot or an upgrade (clock, driver, kernel, torch). Memory is
# rounded to GiB: the total the kernel reports moves by a few MiB between kernel versions.
FINGERPRINT_KEYS = (
    "cpu_model",
    "cpu_physical_cores",
    "cpu_logical_cores",
    "simd",
    "memory_gib",
    "gpus",
    "os_family",
    "arch",
)
ID_CHARS = 12
# The widest vector or matrix extension a CPU reports, best first: what separates two CPUs of
# one model name in speed (a VM's "AMD EPYC" may be AVX2 on one host and AVX-512 on another).
SIMD_CLASSES = (
    ("amx_bf16", "amx"),
    ("avx512_bf16", "avx512_bf16"),
    ("avx512f", "avx512"),
    ("avx2", "avx2"),
    ("avx", "avx"),
    ("sme", "sme"),
    ("sve", "sve"),
    ("asimd", "neon"),
    ("neon", "neon"),
    ("sse4_2", "sse4"),
)
_ARCHES = ("x86_64", "amd64", "aarch64", "arm64", "ppc64le", "s390x", "riscv64")


def simd_class(flags) -> str | None:
    """The widest SIMD class among a CPU's flags (Linux names), None when none is known."""
    have = set(flags or ())
    return next((name for flag, name in SIMD_CLASSES if flag in have), None)


def _gib(n_bytes) -> int | None:
    return round(n_bytes / 2**30) if isinstance(n_bytes, (int, float)) and n_bytes > 0 else None


def _os_family(os_text) -> str | None:
    """'Linux', 'Darwin' or 'Windows' from platform.system() or the start of platform.platform()."""
    text = str(os_text or "")
    for prefix, family in (("linux", "Linux"), ("macos", "Darwin"), ("darwin", "Darwin")):
        if text.lower().startswith(prefix):
            return family
    return "Windows" if text.lower().startswith("windows") else None


def _arch(env: dict) -> str | None:
    machine = env.get("machine_arch")
    if machine:
        return str(machine).lower().replace("amd64", "x86_64").replace("aarch64", "arm64")
    found = [a for a in _ARCHES if a in str(env.get("os") or "").lower()]  # platform.platform()
    return found[0].replace("amd64", "x86_64").replace("aarch64", "arm64") if found else None


def machine_fingerprint(env: dict, device: dict | None = None) -> dict:
    """The fingerprint from an `environment` section as recorded (measure/environment.collect).
    Newer runs record every GPU of the machine (`gpus`); an older file names only the GPU its
    run used (`gpu_name`, `gpu_memory_bytes`), and a log imported from another trainer records
    no environment: then the device it names is all there is (`device`)."""
    device = device or {}
    gpus = env.get("gpus")
    if isinstance(gpus, list):
        listed = [
            [str(g.get("name")), _gib(g.get("memory_bytes"))] for g in gpus if isinstance(g, dict)
        ]
    elif env.get("gpu_name"):
        listed = [[str(env["gpu_name"]), _gib(env.get("gpu_memory_bytes"))]]
    elif device.get("type") == "cuda" and device.get("name"):
        listed = [[str(device["name"]), None]]
    else:
        listed = []
    cpu_model = env.get("cpu_model")
    if cpu_model is None and device.get("type") == "cpu":
        cpu_model = device.get("name")
    cores = lambda v: v if isinstance(v, int) and not isinstance(v, bool) else None  # noqa: E731
    return {
        "cpu_model": None if cpu_model is None else str(cpu_model),
        "cpu_physical_cores": cores(env.get("cpu_physical_cores")),
        "cpu_logical_cores": cores(env.get("cpu_logical_cores")),
        "simd": simd_class(env.get("cpu_flags"))
        if isinstance(env.get("cpu_flags"), list)
        else None,
        "memory_gib": _gib(env.get("memory_total_bytes")),
        "gpus": sorted(listed, key=lambda g: (g[0], g[1] or 0)),
        "os_family": _os_family(env.get("os_family") or env.get("os")),
        "arch": _arch(env),
    }


def _short_hash(value) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_CHARS]


def machine_ids(fingerprint: dict, install: str | None) -> tuple[str, str]:
    """(hardware_id, machine_id): short hashes of the fingerprint, and of it with the install token."""
    return _short_hash(fingerprint), _short_hash([fingerprint, install])


def machine_record(env: dict, device: dict | None = None) -> dict:
    """The `machine` section a run records: its fingerprint, install token and both ids."""
    fp = machine_fingerprint(env, device)
    install = env.get("machine_token") if isinstance(env.get("machine_token"), str) else None
    hardware_id, machine_id = machine_ids(fp, install)
    return {
        "fingerprint": fp,
        "install": install,
        "hardware_id": hardware_id,
        "machine_id": machine_id,
    }


def _machine(section: dict, env: dict, device: dict, path) -> MachineInfo:
    """The recorded `machine` section, checked (its ids must be those of its fingerprint: an
    edited id would make one machine's runs pass for another's), else one derived from the
    environment (older files) or the device name (imported logs)."""
    if not section:
        record = machine_record(env, device)
        source = "derived from the environment" if env else "derived from the device name"
        return MachineInfo(
            record["fingerprint"], None, record["hardware_id"], record["machine_id"], source
        )
    fp, install = section.get("fingerprint"), section.get("install")
    if not isinstance(fp, dict) or sorted(fp) != sorted(FINGERPRINT_KEYS):
        raise InputError(
            f"{path}: metadata key 'machine.fingerprint' is not a fingerprint of keys "
            f"{', '.join(FINGERPRINT_KEYS)}; the file is damaged"
        )
    if install is not None and not isinstance(install, str):
        raise InputError(
            f"{path}: metadata key 'machine.install' is not a string; the file is damaged"
        )
    hardware_id, machine_id = machine_ids(fp, install)
    if (section.get("hardware_id"), section.get("machine_id")) != (hardware_id, machine_id):
        raise InputError(
            f"{path}: metadata keys 'machine.hardware_id'/'machine.machine_id' are not those of its "
            f"fingerprint (edited by hand?); the file is refused"
        )
    return MachineInfo(fp, install, hardware_id, machine_id, "recorded")
