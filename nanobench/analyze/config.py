"""The identity of a configuration: what may differ between runs of one scenario on purpose.

Runs are first grouped by (scenario name, dataset sha256), never compared across groups
(analyze/compare.py); within a group, runs with equal `Config` are seeds of one
configuration and are aggregated (analyze/seeds.py). A new axis of comparison (a source of
results) is a new field here and in `config_of`.

A configuration is its device, dtype, compile and its *recipe*: the scenario as run, after
`--set` overrides, less what does not change the numbers at a given iteration (docs/compare.md):
the name, description, targets and sample, the seed (what varies between seeds) and
`train.max_iters` (how far the run goes: the schedule is `warmup_iters`/`lr_decay_iters`,
so a shorter run is a truncation of the same curve, like `--max-iters`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from nanobench.store.meta import RunMeta


@dataclass(frozen=True, order=True)
class Config:
    """A configuration: what may differ between runs of one scenario on purpose; runs with
    equal Configs are seeds of one another. Not explain's `Point` (analyze/ladder.py): a
    Config has no length (a shorter run truncates the same curve) and leaves threads and
    torch version out (compare flags them as confounds rather than split on them)."""

    device_type: str
    device_name: str
    dtype: str
    compile: bool
    continues: str = (
        ""  # a resumed run: "cpu fp32 @1000", the configuration and iteration it took over
    )
    recipe: tuple[
        tuple[str, str], ...
    ] = ()  # ("train.learning_rate", "0.0003"): recipe_of(), values as JSON
    imported: str = (
        ""  # a run imported from another trainer's log ("nanogpt"): never a seed of nanobench's own
    )
    best: bool = False  # `run --best`: the device's tuned settings (analyze/best.py compares these)

    def label(self, with_name: bool = False) -> str:
        text = (
            f"{self.device_type} {self.dtype}"
            + (" compiled" if self.compile else "")
            + (" best" if self.best else "")
        )
        text = f"{text} ({self.device_name})" if with_name else text
        text = f"{text} from {self.imported} log" if self.imported else text
        return f"{text} continuing {self.continues}" if self.continues else text


def group_key(info: RunMeta) -> tuple[str, str]:
    """(scenario name, dataset sha256): runs with different keys are never compared."""
    return str(info.scenario_name if info.scenario_name is not None else "?"), _or_unknown(
        info.dataset.sha256
    )


# The scenario sections that make the recipe, and the keys in them that do not (see the top).
RECIPE_SECTIONS = ("data", "model", "train", "eval")
NOT_RECIPE = {"train.seed", "train.max_iters"}


def recipe_of(scenario: dict) -> tuple[tuple[str, str], ...]:
    """The recipe of a recorded scenario: (dotted key, value as canonical JSON), sorted. A file
    that records fewer keys (hand-made, older) has a shorter recipe and so differs from one
    that records them all: what is not known is not assumed equal."""
    out = []
    for section in RECIPE_SECTIONS:
        values = scenario.get(section)
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            dotted = f"{section}.{key}"
            if dotted not in NOT_RECIPE:
                out.append((dotted, json.dumps(value, sort_keys=True)))
    return tuple(sorted(out))


def config_of(info: RunMeta) -> Config:
    """A run's configuration, from its metadata."""
    device_type = info.device.type if info.device.type is not None else info.options.device
    return Config(
        _or_unknown(device_type),
        _or_unknown(info.device.name),
        info.options.settings.dtype,
        info.options.settings.compile,
        _continues(info),
        recipe_of(info.scenario),
        _or_unknown(info.imported.format) if info.imported else "",
        info.options.best,
    )


def _or_unknown(value) -> str:
    return "?" if value is None else str(value)


def _continues(info: RunMeta) -> str:
    """'cpu fp32 @1000' for a run resumed from a checkpoint of a cpu fp32 run at iteration 1000.

    A continuation is its own configuration: its history is its parent's, so it is never
    averaged with runs that trained from scratch; plots draw it on from its parent's curve.
    """
    parent = info.resumed_from
    if parent is None:
        return ""
    return f"{parent.device_type} {_or_unknown(parent.dtype)} @{_or_unknown(parent.iter)}"


def recipe_diff(recipe: tuple, reference: tuple) -> dict[str, str]:
    """Dotted key -> this recipe's value (JSON; "?" where it records none), for every key whose
    value differs from the reference recipe's."""
    mine, ref = dict(recipe), dict(reference)
    return {k: mine.get(k, "?") for k in sorted(set(mine) | set(ref)) if mine.get(k) != ref.get(k)}


def reference_recipe(recipes: list[tuple], plain: list[tuple] = ()) -> tuple:
    """The recipe labels are written against: the one most runs without `--set` overrides
    used (the scenario as its file says), else the one most runs used; ties broken by sort
    order, so file order never matters. `recipes` and `plain` hold one entry per run."""
    pool = Counter(plain or recipes)
    return min(pool, key=lambda r: (-pool[r], r)) if pool else ()


MAX_LABEL_KEYS = 3  # a label stays short; the group's note lists every differing key


def _short_key(key: str, keys: set[str]) -> str:
    """'learning_rate' for 'train.learning_rate', unless another section has a key of that name."""
    leaf = key.rpartition(".")[2]
    return leaf if sum(1 for k in keys if k.rpartition(".")[2] == leaf) == 1 else key


def show_value(text: str) -> str:
    """A recipe value as written in a label: 3e-4 rather than 0.0003, strings unquoted."""
    if text == "?":
        return text
    value = json.loads(text)
    if isinstance(value, float):
        plain, sci = f"{value:g}", f"{value:e}"
        mantissa, _, exponent = sci.partition("e")
        sci = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return sci if len(sci) < len(plain) else plain
    return value if isinstance(value, str) else json.dumps(value)


def recipe_tag(recipe: tuple, reference: tuple) -> str:
    """' · learning_rate=3e-4': what this recipe changes against the reference; '' if nothing."""
    diff = recipe_diff(recipe, reference)
    if not diff:
        return ""
    keys = set(dict(recipe)) | set(dict(reference))
    parts = [
        f"{_short_key(k, keys)}={show_value(v)}" for k, v in list(diff.items())[:MAX_LABEL_KEYS]
    ]
    more = len(diff) - MAX_LABEL_KEYS
    return " · " + ", ".join(parts) + (f" +{more} more" if more > 0 else "")


def labels(configs: list[Config], reference: tuple | None = None) -> dict[Config, str]:
    """Short labels ('cuda bf16'); the device name is added only where short ones clash, and
    what a recipe changes against the reference recipe after a dot: 'cpu fp32 · learning_rate=3e-4'."""
    if reference is None:
        reference = reference_recipe([c.recipe for c in configs])
    short = {c: c.label() + recipe_tag(c.recipe, reference) for c in configs}
    clash = {lab for lab in short.values() if list(short.values()).count(lab) > 1}
    return {
        c: c.label(with_name=short[c] in clash) + recipe_tag(c.recipe, reference) for c in configs
    }


def recipe_note(configs: list[Config]) -> str | None:
    """One line naming the recipe keys that differ between configurations, or None."""
    recipes = {c.recipe for c in configs}
    if len(recipes) < 2:
        return None
    keys = sorted({k for a in recipes for b in recipes for k in recipe_diff(a, b)})
    return (
        f"the recipes differ in {', '.join(keys)}: {len(recipes)} different experiments, shown side by side "
        f"and never pooled as seeds of one another"
    )
