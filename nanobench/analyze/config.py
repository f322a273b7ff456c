"""The identity of a configuration: what may differ between runs of one scenario on purpose.

Runs are first grouped by (scenario name, dataset sha256), never compared across groups
(analyze/compare.py); within a group, runs with equal `Config` are seeds of one
configuration and are aggregated (analyze/seeds.py). A new axis of comparison (a recipe, a
source of results) is a new field here and in `config_of`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nanobench.store.meta import RunMeta


@dataclass(frozen=True, order=True)
class Config:
    """A configuration: what may differ between runs of one scenario on purpose."""

    device_type: str
    device_name: str
    dtype: str
    compile: bool
    continues: str = ""  # a resumed run: "cpu fp32 @1000", the configuration and iteration it took over

    def label(self, with_name: bool = False) -> str:
        text = f"{self.device_type} {self.dtype}" + (" compiled" if self.compile else "")
        text = f"{text} ({self.device_name})" if with_name else text
        return f"{text} continuing {self.continues}" if self.continues else text


def group_key(info: RunMeta) -> tuple[str, str]:
    """(scenario name, dataset sha256): runs with different keys are never compared."""
    return str(info.scenario_name if info.scenario_name is not None else "?"), _or_unknown(info.dataset.sha256)


def config_of(info: RunMeta) -> Config:
    """A run's configuration, from its metadata."""
    device_type = info.device.type if info.device.type is not None else info.options.device
    return Config(_or_unknown(device_type), _or_unknown(info.device.name), _or_unknown(info.options.dtype),
                  info.options.compile, _continues(info))


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


def labels(configs: list[Config]) -> dict[Config, str]:
    """Short labels ('cuda bf16'); the device name is added only where short ones clash."""
    short = {c: c.label() for c in configs}
    clash = {lab for lab in short.values() if list(short.values()).count(lab) > 1}
    return {c: c.label(with_name=short[c] in clash) for c in configs}
