"""Scenario files: the mathematics of a run (data, model, optimizer, schedule, evaluation,
targets, seed), loaded from TOML into frozen dataclasses and validated once.

A scenario never names a device; that is a run option. Keys mirror nanoGPT's names.
Every problem in a file is reported at once, each naming the file and the key path.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from nanobench import files
from nanobench.errors import InputError

# The name starts every run id and result file name (files.py: safe names).
MAX_NAME_CHARS = 64

# Shipped scenarios live beside the package in the project checkout (scenarios/*.toml).
SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios"


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "tinyshakespeare"  # "tinyshakespeare", "synthetic", or a path to UTF-8 text


@dataclass(frozen=True)
class ModelConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = False


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 12
    grad_accum: int = 1
    max_iters: int = 2000
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int = 2000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 disables clipping (the norm is still recorded)
    seed: int = 1337


@dataclass(frozen=True)
class EvalConfig:
    interval: int = 250
    iters: int = 20


@dataclass(frozen=True)
class TargetsConfig:
    val_loss: tuple[float, ...] = ()


@dataclass(frozen=True)
class SampleConfig:
    """Text generated from the final weights, on the CPU, with its own fixed seed."""

    prompt: str = "\n"
    length: int = 200
    seed: int = 0
    temperature: float = 0.8
    top_k: int = 0  # 0 = no top-k filtering


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    targets: TargetsConfig = field(default_factory=TargetsConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = {f.name: f.type for f in dataclasses.fields(Scenario)}


def _section_class(name: str) -> type | None:
    return {
        "data": DataConfig,
        "model": ModelConfig,
        "train": TrainConfig,
        "eval": EvalConfig,
        "targets": TargetsConfig,
        "sample": SampleConfig,
    }.get(name)


def _type_name(tp) -> str:
    if typing.get_origin(tp) is tuple:
        return "list of numbers"
    return {int: "integer", float: "number", str: "string", bool: "boolean"}[tp]


def _coerce(value, tp):
    """Return value as type tp, or raise ValueError. TOML already typed the value."""
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, list):
            raise ValueError
        return tuple(_coerce(v, float) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError
        return value
    raise TypeError(tp)


def _field_types(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _build(raw: dict) -> tuple[Scenario | None, list[str]]:
    """Build a Scenario from a parsed TOML table, collecting every error as 'key: problem'."""
    errors: list[str] = []
    top_types = {"name": str, "description": str}
    kwargs: dict = {}
    for key, value in raw.items():
        if key in top_types:
            try:
                kwargs[key] = _coerce(value, top_types[key])
            except ValueError:
                errors.append(f"{key}: expected a string, got {type(value).__name__} {value!r}")
            continue
        cls = _section_class(key)
        if cls is None:
            errors.append(f"{key}: unknown key (known: {', '.join(_SECTIONS)})")
            continue
        if not isinstance(value, dict):
            errors.append(f"{key}: expected a table [{key}], got {type(value).__name__}")
            continue
        types = _field_types(cls)
        section_kwargs = {}
        for sub, sub_value in value.items():
            if sub not in types:
                errors.append(f"{key}.{sub}: unknown key (known: {', '.join(types)})")
                continue
            try:
                section_kwargs[sub] = _coerce(sub_value, types[sub])
            except ValueError:
                errors.append(
                    f"{key}.{sub}: expected {_type_name(types[sub])}, "
                    f"got {type(sub_value).__name__} {sub_value!r}"
                )
        kwargs[key] = cls(**section_kwargs)
    if "name" not in kwargs:
        errors.append("name: missing (every scenario has a name)")
    # Values are checked even when some keys were malformed (those keep their defaults), so
    # one pass reports everything; rules that involve a malformed key are left out.
    scenario = Scenario(**{"name": "?", **kwargs})
    bad_keys = {err.split(":")[0] for err in errors}
    errors += [err for err in _check_values(scenario) if not any(k in err for k in bad_keys)]
    return (None if errors else scenario), errors


def _check_values(s: Scenario) -> list[str]:
    """Values that parse but cannot train. Checked before any training starts."""
    m, t, e, smp = s.model, s.train, s.eval, s.sample
    name_problem = files.name_problem(s.name, MAX_NAME_CHARS)
    rules = [
        (name_problem is None, "name", name_problem),
        (m.n_layer >= 1, "model.n_layer", f"must be >= 1, got {m.n_layer}"),
        (m.n_head >= 1, "model.n_head", f"must be >= 1, got {m.n_head}"),
        (m.n_embd >= 1, "model.n_embd", f"must be >= 1, got {m.n_embd}"),
        (
            m.n_head < 1 or m.n_embd % m.n_head == 0,
            "model.n_embd",
            f"{m.n_embd} is not divisible by model.n_head = {m.n_head}",
        ),
        (m.block_size >= 1, "model.block_size", f"must be >= 1, got {m.block_size}"),
        (0.0 <= m.dropout < 1.0, "model.dropout", f"must be in [0, 1), got {m.dropout}"),
        (t.batch_size >= 1, "train.batch_size", f"must be >= 1, got {t.batch_size}"),
        (t.grad_accum >= 1, "train.grad_accum", f"must be >= 1, got {t.grad_accum}"),
        (t.max_iters >= 1, "train.max_iters", f"must be >= 1, got {t.max_iters}"),
        (t.learning_rate > 0, "train.learning_rate", f"must be > 0, got {t.learning_rate}"),
        (
            0 <= t.min_lr <= t.learning_rate,
            "train.min_lr",
            f"must be in [0, train.learning_rate], got {t.min_lr}",
        ),
        (t.warmup_iters >= 0, "train.warmup_iters", f"must be >= 0, got {t.warmup_iters}"),
        (
            t.lr_decay_iters >= t.warmup_iters,
            "train.lr_decay_iters",
            f"must be >= train.warmup_iters ({t.warmup_iters}), got {t.lr_decay_iters}",
        ),
        (t.weight_decay >= 0, "train.weight_decay", f"must be >= 0, got {t.weight_decay}"),
        (0 <= t.beta1 < 1, "train.beta1", f"must be in [0, 1), got {t.beta1}"),
        (0 <= t.beta2 < 1, "train.beta2", f"must be in [0, 1), got {t.beta2}"),
        (t.grad_clip >= 0, "train.grad_clip", f"must be >= 0 (0 = off), got {t.grad_clip}"),
        (t.seed >= 0, "train.seed", f"must be >= 0, got {t.seed}"),
        (e.interval >= 1, "eval.interval", f"must be >= 1, got {e.interval}"),
        (e.iters >= 1, "eval.iters", f"must be >= 1, got {e.iters}"),
        (
            all(v > 0 for v in s.targets.val_loss),
            "targets.val_loss",
            f"targets must be > 0, got {list(s.targets.val_loss)}",
        ),
        (smp.length >= 0, "sample.length", f"must be >= 0, got {smp.length}"),
        (smp.temperature > 0, "sample.temperature", f"must be > 0, got {smp.temperature}"),
        (smp.top_k >= 0, "sample.top_k", f"must be >= 0, got {smp.top_k}"),
        (bool(s.data.dataset), "data.dataset", "must not be empty"),
    ]
    return [f"{key}: {msg}" for ok, key, msg in rules if not ok]


def resolve_path(name_or_path: str) -> Path:
    """A shipped scenario name (`smoke`) or a path to a TOML file."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise InputError(f"{name_or_path}: scenario file not found")
        return p
    shipped = SCENARIO_DIR / f"{name_or_path}.toml"
    if not shipped.is_file():
        known = ", ".join(list_shipped()) or "none"
        raise InputError(
            f"unknown scenario '{name_or_path}' (shipped: {known}; or give a path to a .toml file)"
        )
    return shipped


def list_shipped() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def parse_override(text: str) -> tuple[str, object]:
    """`train.learning_rate=1e-3` -> ("train.learning_rate", 0.001). Values are TOML."""
    key, sep, value = text.partition("=")  # split on the first '=' only: values may hold '='
    key = key.strip()
    if not sep or not key:
        raise InputError(f"--set {text!r}: expected key=value, e.g. --set train.learning_rate=3e-4")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()  # a bare word is a string: --set data.dataset=synthetic
    return key, parsed


def load(name_or_path: str, overrides: list[str] = ()) -> Scenario:
    """Load, apply `--set` overrides, validate. Raises InputError listing every problem."""
    path = resolve_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: TOML syntax error: {exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; a scenario is a TOML file") from None
    return from_dict(raw, overrides, str(path))


def from_dict(raw: dict, overrides: list[str] = (), where: str = "scenario") -> Scenario:
    """A scenario from its parsed (or recorded, e.g. in a checkpoint) table, with `--set`
    overrides applied; every problem reported at once, each prefixed with `where`."""
    for text in overrides:
        key, value = parse_override(text)
        *parents, leaf = key.split(".")
        table = raw
        for part in parents:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise InputError(f"--set {key}: {part} is not a table")
        table[leaf] = value
    scenario, errors = _build(raw)
    if errors:
        where = where + (f" (with --set {', '.join(overrides)})" if overrides else "")
        raise InputError("\n".join(f"{where}: {err}" for err in errors))
    return scenario
