"""How much faster is one device than another, two ways, within one group of runs:

- "same settings": both devices ran with the same settings (dtype, compile, threads,
  optimizer, SDPA backend), none of them tuned;
- "best vs best": each device ran with its own tuned settings (`nanobench run --best`,
  options.best), which may differ: the CPU's fastest loss-equivalent settings against the
  GPU's.

The ratio is the slower device's median step time over the faster's (pairs.speedup, with its
quartile range); the settings of each side are named, from the runs' recorded options.
"""

from __future__ import annotations

from dataclasses import dataclass

from nanobench.analyze.pairs import Speedup, speedup
from nanobench.analyze.seeds import ConfigSummary


@dataclass(frozen=True)
class DeviceSpeedup:
    kind: str  # "same settings" or "best vs best"
    base: ConfigSummary  # on the baseline's device
    other: ConfigSummary  # on another device
    speedup: Speedup  # base median / other median: > 1 when `other` is faster
    base_settings: str
    other_settings: str

    def sentence(self) -> str:
        b, o = self.base.config, self.other.config
        s = self.speedup
        return (
            f"{self.kind}: {o.device_type} ({o.device_name}) is {s.ratio:.2f}x {b.device_type} ({b.device_name}) "
            f"[{s.low:.2f}-{s.high:.2f}x]; {b.device_type}: {self.base_settings}; "
            f"{o.device_type}: {self.other_settings}"
        )


def settings_of(cs: ConfigSummary) -> str:
    """The settings of a configuration's first run, as recorded; '?' without its metadata."""
    run = cs.runs[0].run if cs.runs else None
    return run.info.options.settings.describe() if run is not None else "?"


def device_speedups(configs: list[ConfigSummary]) -> list[DeviceSpeedup]:
    """Against the first configuration's device (the baseline's): for every other device,
    a same-settings pair (untuned configurations with equal settings; the baseline's own
    when it has one) and a best-vs-best pair (the tuned configuration on each device)."""
    if not configs:
        return []
    device = lambda c: (c.config.device_type, c.config.device_name)  # noqa: E731
    home = device(configs[0])
    out = []
    for other_device in dict.fromkeys(device(c) for c in configs if device(c) != home):
        mine = [c for c in configs if device(c) == home and not c.config.continues]
        theirs = [c for c in configs if device(c) == other_device and not c.config.continues]
        same = [
            (a, b)
            for a in mine
            if not a.config.best
            for b in theirs
            if not b.config.best and settings_of(a) == settings_of(b)
        ]
        tuned = [(a, b) for a in mine if a.config.best for b in theirs if b.config.best]
        for kind, pairs in (("same settings", same), ("best vs best", tuned)):
            for a, b in pairs[:1]:
                s = speedup(a.step_times_s, b.step_times_s)
                if s is not None:
                    out.append(DeviceSpeedup(kind, a, b, s, settings_of(a), settings_of(b)))
    return out
