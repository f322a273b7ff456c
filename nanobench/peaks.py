"""Peak FLOP rates per device and dtype: datasheet (spec) and measured (calibration).

Placeholder interface, filled in by the measurement work (issue 3): until then every
peak is unknown and MFU is null, never a wrong number.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    flops: float | None  # FLOP/s, or None when unknown
    source: str  # where the number came from, or why it is unknown


def spec_peak(device, dtype: str) -> Peak:
    return Peak(None, "no peak table yet")


def measured_peak(device, dtype: str, recalibrate: bool = False) -> Peak:
    return Peak(None, "no calibration yet")
