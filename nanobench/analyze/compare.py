"""A comparison of result files: runs grouped by (scenario, dataset), the seeds of each
configuration aggregated, a baseline chosen, every other configuration compared with it,
and what differs besides the device listed as confounds.

The layers of analysis, each a module: runs.py (one run: rows -> RunStats), config.py (the
identity of a configuration), seeds.py (a configuration's seeds aggregated), pairs.py (two
configurations compared), verdicts.py (sentences), gates.py (--fail-on), export.py (--json).
Nothing here prints or draws: present/ shows what these functions return.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nanobench.analyze import equivalence, references
from nanobench.analyze.best import DeviceSpeedup, device_speedups
from nanobench.analyze.config import Config, labels, recipe_note, reference_recipe
from nanobench.analyze.pairs import PairComparison, compare_pair, precision_reference
from nanobench.analyze.runs import RunStats, load_runs, run_stats
from nanobench.analyze.seeds import ConfigSummary, aggregate
from nanobench.errors import InputError
from nanobench.store import results


@dataclass
class Group:
    """Runs that may be compared: one scenario on one dataset."""

    scenario: str
    dataset: str
    dataset_sha256: str
    runs: list[RunStats]
    configs: list[ConfigSummary]  # the baseline first
    baseline: ConfigSummary
    pairs: list[PairComparison]
    targets: tuple[float, ...]
    confounds: list[str]
    # e.g. which recipe keys differ between configurations
    notes: list[str] = field(default_factory=list)
    # device against device, "same settings" and "best vs best" (analyze/best.py): only when
    # the group holds a `run --best` configuration, else empty
    device_speedups: list[DeviceSpeedup] = field(default_factory=list)
    baseline_why: str = ""  # how the baseline was chosen: the rule, or --reference

    @property
    def key(self) -> tuple[str, str]:
        return (self.scenario, self.dataset_sha256)


@dataclass
class Comparison:
    groups: list[Group]
    warnings: list[str]
    skipped: list[str] = field(default_factory=list)
    references: list[references.Check] = field(default_factory=list)  # "is my run normal?", per run

    @property
    def runs(self) -> list[RunStats]:
        """Every run compared, in the order shown: group by group, configuration by configuration."""
        return [r for g in self.groups for cs in g.configs for r in cs.runs]


BASELINE_RULE = (
    "cpu fp32 eager of the reference recipe, untuned first; a configuration with a noisy run only "
    "when no quiet one is there; then the slowest"
)


def _noisy(c: ConfigSummary) -> bool:
    return any(r.noise.verdict == "noisy" for r in c.runs)


def choose_baseline(configs: list[ConfigSummary], reference: tuple | None = None) -> ConfigSummary:
    """The baseline by BASELINE_RULE: never a continuation (unless nothing else is there), an
    imported log only when nothing else is; never a configuration with a noisy run where a quiet
    one is there; then the reference recipe (config.reference_recipe), cpu fp32 eager before
    anything else, untuned before `--best`, the slowest by median ms/iter; ties and missing timings
    broken by label, so the choice never depends on file order."""
    return min(
        configs,
        key=lambda c: (
            bool(c.config.continues),
            bool(c.config.imported),
            _noisy(c),
            reference is not None and c.config.recipe != reference,
            not (
                c.config.device_type == "cpu" and c.config.dtype == "fp32" and not c.config.compile
            ),
            c.config.best,
            -(c.median_step_s or 0.0),
            c.label,
            c.config,
        ),
    )


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def named(configs: list[ConfigSummary], name: str) -> list[ConfigSummary]:
    """The configurations `--reference NAME` names: the one whose label is NAME (as printed),
    else those whose label without the device name is NAME ("cpu fp32" for "cpu fp32 (EPYC)")."""
    want = _normal(name)
    exact = [c for c in configs if _normal(c.label) == want]
    if exact:
        return exact
    return [
        c
        for c in configs
        if _normal(c.config.label()) == want
        or _normal(c.label).replace(f" ({_normal(c.config.device_name)})", "") == want
    ]


def baseline_of(
    configs: list[ConfigSummary], reference_recipe: tuple | None, name: str | None
) -> tuple[ConfigSummary, str]:
    """(the baseline, why: the sentence the output states)."""
    if name:
        found = named(configs, name)
        if len(found) > 1:
            raise InputError(
                f"--reference {name}: {len(found)} configurations match "
                f"({', '.join(c.label for c in found)}); name one as printed"
            )
        if found:
            return found[0], f"named by --reference {name}"
    base = choose_baseline(configs, reference_recipe)
    noisy = " (every configuration has a noisy run)" if _noisy(base) and len(configs) > 1 else ""
    why = f"by the rule: {BASELINE_RULE}{noisy}; --reference CONFIG names another"
    if name:
        why = f"--reference {name} is not in this group, so {why}"
    return base, why


def confounds(runs: list[RunStats], names: dict[Config, str] | None = None) -> list[str]:
    """What differs between runs of one group besides the device itself (and the recipe,
    which makes different configurations: see the group's notes)."""
    names = names or labels(list({r.config: None for r in runs}))

    def spread(name: str, value_of, why: str) -> str | None:
        counts: dict = {}
        for r in runs:
            counts[value_of(r)] = counts.get(value_of(r), 0) + 1
        if len(counts) < 2:
            return None
        listed = ", ".join(
            f"{'not recorded' if v is None else v} ({n} run{'s' if n > 1 else ''})"  # None: an imported log's
            for v, n in sorted(counts.items(), key=lambda kv: str(kv[0]))
        )
        return f"{name} differs: {listed}; {why}"

    items = [
        spread(
            "dtype",
            lambda r: r.config.dtype,
            "precision, not the device, may explain loss differences",
        ),
        spread(
            "compile",
            lambda r: "compiled" if r.config.compile else "eager",
            "compilation changes speed and kernel order",
        ),
        spread(
            "threads", lambda r: r.threads, "CPU thread count changes speed and reduction order"
        ),
        spread("torch", lambda r: r.torch_version, "kernels differ between torch versions"),
    ]
    by_config: dict = {}
    for r in runs:
        by_config.setdefault(r.config, set()).add(r.evaluations[-1].iter if r.evaluations else 0)
    for config, lengths in sorted(by_config.items()):
        if len(lengths) > 1:
            items.append(
                f"{names[config]} runs end at different iterations ({', '.join(map(str, sorted(lengths)))}): "
                f"their mean curve and the equivalence verdict use only the evaluations all of them reached"
            )
    return [i for i in items if i]


def build_group(
    runs: list[RunStats],
    margin: float = equivalence.DEFAULT_MARGIN,
    reference_config: str | None = None,
) -> Group:
    by_config: dict[Config, list[RunStats]] = {}
    for r in sorted(runs, key=lambda r: (r.config, r.seed if r.seed is not None else -1, r.run_id)):
        by_config.setdefault(r.config, []).append(r)
    reference = reference_recipe(
        [r.config.recipe for r in runs], [r.config.recipe for r in runs if not r.overrides]
    )
    names = labels(list(by_config), reference)
    summaries = [aggregate(c, names[c], rs) for c, rs in by_config.items()]
    base, why = baseline_of(summaries, reference, reference_config)
    ordered = [base] + sorted((c for c in summaries if c is not base), key=lambda c: c.label)
    targets = runs[0].targets
    first = runs[0]
    return Group(
        first.scenario,
        first.dataset,
        first.dataset_sha256,
        runs,
        ordered,
        base,
        [
            compare_pair(base, c, targets, precision_reference(base, c, ordered), margin)
            for c in ordered[1:]
        ],
        targets,
        confounds(runs, names),
        [n for n in [recipe_note(list(by_config))] if n],
        device_speedups(ordered) if any(c.config.best for c in ordered) else [],
        why,
    )


def compare_runs(
    runs: list[RunStats],
    margin: float = equivalence.DEFAULT_MARGIN,
    reference_config: str | None = None,
) -> Comparison:
    """Group by (scenario, dataset sha256): groups are never mixed; compare within each.
    `reference_config`: the configuration to take as every group's baseline (compare
    --reference), by its label; bad input when no group has it."""
    groups: dict[tuple[str, str], list[RunStats]] = {}
    for r in runs:
        groups.setdefault((r.scenario, r.dataset_sha256), []).append(r)
    warnings = []
    if len(groups) > 1:
        listed = ", ".join(
            f"{s} on {g[0].dataset} ({h[:8]})" for (s, h), g in sorted(groups.items())
        )
        warnings.append(
            f"runs of {len(groups)} scenario/dataset pairs ({listed}) are compared separately, never mixed"
        )
    for r in sorted(runs, key=lambda r: r.run_id):
        if r.status not in results.COMPLETE_STATUSES:
            warnings.append(
                f"{r.run_id}: status {r.status}; its numbers cover only what it recorded"
            )
        if not r.evaluations:
            warnings.append(
                f"{r.run_id}: no evaluation recorded; val-loss comparisons leave it out"
            )
    out = [build_group(g, margin, reference_config) for _, g in sorted(groups.items())]
    if reference_config and not any(g.baseline_why.startswith("named") for g in out):
        listed = "; ".join(cs.label for g in out for cs in g.configs)
        raise InputError(
            f"--reference {reference_config}: no such configuration; the configurations are: {listed}"
        )
    checks = (
        references.check(
            r.run_id,
            r.scenario,
            [(e.iter, e.val_loss) for e in r.evaluations],
            # the reference seeds are nanobench's: an imported log's seed 1337 is another draw
            None if r.config.imported else r.seed,
        )
        for r in sorted(runs, key=lambda r: r.run_id)
    )
    return Comparison(out, warnings, references=[c for c in checks if c is not None])


def compare_files(
    paths: list[str],
    skip_bad: bool = False,
    margin: float = equivalence.DEFAULT_MARGIN,
    reference_config: str | None = None,
) -> Comparison:
    """Read the result files that `paths` name (files, folders, globs) and compare them; each
    RunStats of the comparison carries its loaded run (`.run`: metadata and rows)."""
    runs, skipped = load_runs(paths, skip_bad)
    comparison = compare_runs([run_stats(r) for r in runs], margin, reference_config)
    comparison.skipped = skipped
    return comparison
