"""The ladder of `nanobench explain`: the factors in which two points differ, and a chain of
points from one to the other that changes one factor (or one inseparable group: the device
with its threads and torch version) per rung.

A *point* is where a run stands for explain: the recipe (analyze/config.recipe_of), the
iterations, device, dtype, compile, CPU threads and torch version. It is not a `Config`
(analyze/config.py) at a length: see `Point`. Recipe keys belong to the
factor they change: the schedule (`lr_decay_iters`, `warmup_iters`) goes with the iterations,
batch size, gradient accumulation and context with "batch and context", the layers, heads,
width and bias with "model shape", and every other key is "the recipe". Pure functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np

from nanobench.analyze.config import recipe_tag, show_value
from nanobench.analyze.runs import RunStats
from nanobench.errors import InputError

# ---- factors -----------------------------------------------------------------------------------

# Recipe keys (analyze/config.recipe_of) by the factor they belong to; every other recipe key is
# "the recipe". The schedule goes with the iterations: it is defined by the length it decays over.
ITER_KEYS = ("train.lr_decay_iters", "train.warmup_iters")
BATCH_KEYS = ("train.batch_size", "train.grad_accum", "model.block_size")
MODEL_KEYS = ("model.n_layer", "model.n_head", "model.n_embd", "model.bias")
EVAL_KEYS_PREFIX = "eval."  # evaluation never touches a training step: a probe may differ here

FACTOR_LABELS = {
    "device": "device",
    "precision": "precision",
    "compile": "compile",
    "threads": "CPU threads",
    "torch": "torch version",
    "iterations": "iterations and schedule",
    "batch": "batch and context",
    "model": "model shape",
    "recipe": "the recipe",
}
# Two orders: the default changes the platform first, on A's (usually small) recipe, so that
# every later rung runs where B runs; the other changes the mathematics first, on A's device.
ORDERS = {
    "device-first": (
        "device",
        "precision",
        "compile",
        "threads",
        "torch",
        "iterations",
        "batch",
        "model",
        "recipe",
    ),
    "device-last": (
        "iterations",
        "batch",
        "model",
        "recipe",
        "compile",
        "threads",
        "torch",
        "precision",
        "device",
    ),
}
DEFAULT_ORDER = "device-first"


@dataclass(frozen=True)
class Point:
    """Where a run stands on the ladder: a factor explain splits a gap into is a field. None in
    device_name, threads or torch means "any" (a selector that names only the device type);
    `scenario` and `base` only build commands.

    Not a `Config` (analyze/config.py), which says which runs are seeds of one configuration
    for `compare`: a Point adds what explain attributes time to and compare does not split on
    (the length, CPU threads, torch version), may leave some of it open, and has no place for
    what explain leaves out (a resumed run's parent, an imported log, `--best`)."""

    recipe: tuple[tuple[str, str], ...]
    iters: int
    device_type: str
    device_name: str | None
    dtype: str
    compile: bool
    threads: int | None
    torch: str | None
    scenario: str = field(default="?", compare=False)
    # what the recipe changes against its scenario's file: " · n_embd=64"
    tag: str = field(default="", compare=False)
    # a recorded scenario dict
    base: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def key(self, name: str) -> str | None:
        return dict(self.recipe).get(name)

    def device_label(self) -> str:
        return f"{self.device_type} ({self.device_name})" if self.device_name else self.device_type

    def label(self) -> str:
        bits = [self.scenario + self.tag, self.device_type, self.dtype] + (
            ["compiled"] if self.compile else []
        )
        bits += [f"{self.iters} iters"] + (
            [f"{self.threads} threads"] if self.threads and self.device_type == "cpu" else []
        )
        return " ".join(bits)


def point_of(stats: RunStats) -> Point:
    """The point a run made: its recipe, its last evaluation's iteration and its platform."""
    info = stats.info if stats.run is not None else None
    iters = stats.evaluations[-1].iter if stats.evaluations else stats.iterations
    cpu = stats.config.device_type == "cpu"
    return Point(
        stats.config.recipe,
        int(iters),
        stats.config.device_type,
        stats.config.device_name,
        stats.config.dtype,
        stats.config.compile,
        stats.threads if cpu else None,
        stats.torch_version,
        scenario=stats.scenario,
        base=info.scenario if info is not None else {},
    )


def _recipe_factor(key: str) -> str:
    return (
        "iterations"
        if key in ITER_KEYS
        else "batch"
        if key in BATCH_KEYS
        else "model"
        if key in MODEL_KEYS
        else "recipe"
    )


def _same(x, y) -> bool:
    return x is None or y is None or x == y  # None: "any", never a difference


def differing(a: Point, b: Point) -> list[str]:
    """The factors in which a and b differ, in the default order. When the device differs, its
    threads and torch version go with it (they describe the machine, not a choice on it)."""
    out = []
    device = a.device_type != b.device_type or not _same(a.device_name, b.device_name)
    if device:
        out.append("device")
    if a.dtype != b.dtype:
        out.append("precision")
    if a.compile != b.compile:
        out.append("compile")
    if not device and not _same(a.threads, b.threads):
        out.append("threads")
    if not device and not _same(a.torch, b.torch):
        out.append("torch")
    keys = {k for k in set(dict(a.recipe)) | set(dict(b.recipe)) if a.key(k) != b.key(k)}
    if a.iters != b.iters:
        keys.add("iterations")
    factors = {"iterations" if k == "iterations" else _recipe_factor(k) for k in keys}
    out += [f for f in ORDERS[DEFAULT_ORDER] if f in factors]
    return out


def _factor_keys(factor: str, a: Point, b: Point) -> list[str]:
    keys = sorted(set(dict(a.recipe)) | set(dict(b.recipe)))
    return [k for k in keys if a.key(k) != b.key(k) and _recipe_factor(k) == factor]


def apply(p: Point, factor: str, target: Point) -> Point:
    """p with `factor` (and what goes with it) taken from target."""
    if factor == "device":
        return replace(
            p,
            device_type=target.device_type,
            device_name=target.device_name,
            threads=target.threads,
            torch=target.torch,
        )
    if factor in ("precision", "compile", "threads", "torch"):
        field_name = {"precision": "dtype"}.get(factor, factor)
        return replace(p, **{field_name: getattr(target, field_name)})
    recipe = dict(p.recipe)
    for k in _factor_keys(factor, p, target):
        if target.key(k) is None:
            recipe.pop(k, None)
        else:
            recipe[k] = target.key(k)
    p = replace(p, recipe=tuple(sorted(recipe.items())))
    return replace(p, iters=target.iters) if factor == "iterations" else p


def describe(factor: str, a: Point, b: Point) -> str:
    """'precision: fp32 -> bf16', 'model shape: n_embd 32 -> 64, n_head 2 -> 4'."""

    def arrow(x, y) -> str:
        return f"{x} -> {y}"

    if factor == "device":
        text = arrow(a.device_label(), b.device_label())
        extra = [
            f"threads {arrow(a.threads, b.threads)}" for _ in [0] if not _same(a.threads, b.threads)
        ]
        extra += [f"torch {arrow(a.torch, b.torch)}" for _ in [0] if not _same(a.torch, b.torch)]
        return f"device: {text}" + (f" (with {', '.join(extra)})" if extra else "")
    if factor in ("precision", "compile", "threads", "torch"):
        field_name = {"precision": "dtype"}.get(factor, factor)
        x, y = getattr(a, field_name), getattr(b, field_name)
        if factor == "compile":
            x, y = ("compiled" if x else "eager"), ("compiled" if y else "eager")
        return f"{FACTOR_LABELS[factor]}: {arrow(x, y)}"
    parts = (
        [f"{arrow(a.iters, b.iters)} iterations"]
        if factor == "iterations" and a.iters != b.iters
        else []
    )
    for k in _factor_keys(factor, a, b):
        leaf = k if factor == "recipe" else k.rpartition(".")[2]
        parts.append(f"{leaf} {arrow(show_value(a.key(k) or '?'), show_value(b.key(k) or '?'))}")
    if factor == "batch":
        ta, tb = tokens_per_iter(a), tokens_per_iter(b)
        if ta and tb:
            parts.append(f"tokens/iteration {arrow(ta, tb)}")
    return f"{FACTOR_LABELS[factor]}: {', '.join(parts)}"


def tokens_per_iter(p: Point) -> int | None:
    try:
        return int(np.prod([json.loads(p.key(k)) for k in BATCH_KEYS]))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Rung:
    factors: tuple[
        str, ...
    ]  # what this rung changes (one factor; the device carries threads and torch)
    description: str
    point: Point  # the point after the change


def parse_order(text: str | None) -> tuple[str, ...]:
    """A preset ('device-first', 'device-last') or factor names separated by commas."""
    if not text:
        return ORDERS[DEFAULT_ORDER]
    if text in ORDERS:
        return ORDERS[text]
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in FACTOR_LABELS]
    if bad or not names:
        raise InputError(
            f"--order {text}: unknown factor {', '.join(bad) or '(none)'}; use {', '.join(ORDERS)} "
            f"or a list of {', '.join(FACTOR_LABELS)}"
        )
    return names


def ladder(a: Point, b: Point, order: tuple[str, ...] = ORDERS[DEFAULT_ORDER]) -> list[Rung]:
    """Rungs from a to b, one differing factor each, in `order` (factors it leaves out follow in
    the default order). The last rung's point is b."""
    diff = differing(a, b)
    sequence = [f for f in order if f in diff] + [f for f in diff if f not in order]
    rungs, here = [], a
    for factor in sequence:
        nxt = apply(here, factor, b)
        rungs.append(Rung((factor,), describe(factor, here, b), nxt))
        here = nxt
    if rungs:  # b itself (its scenario name and recorded dict), whatever the wildcards made of the last point
        rungs[-1] = replace(rungs[-1], point=b)
    return rungs


def name_point(p: Point, recipes: dict[str, tuple]) -> Point:
    """p named after the scenario (of those given) whose recipe it differs from least, with
    what it changes against that recipe as its tag; the command to make it starts from there."""
    if not recipes:
        return p
    name = min(recipes, key=lambda n: (len(set(p.recipe) ^ set(recipes[n])), n != p.scenario))
    return replace(p, scenario=name, tag=recipe_tag(p.recipe, recipes[name]))
