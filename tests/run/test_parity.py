import math

import pyarrow.parquet as pq
import pytest
import torch

from nanobench.errors import InputError
from nanobench.measure.device import parse_device
from nanobench.run.parity import Side, relative_drift, run_parity
from nanobench.run.scenario import load
from nanobench.store import results

CPU_FP32 = Side(parse_device("cpu"), "fp32")


def test_relative_drift_hand_computed():
    a = [torch.tensor([3.0, 0.0]), torch.tensor([[4.0]])]  # ||a|| = 5
    b = [torch.tensor([3.0, 1.0]), torch.tensor([[4.0]])]  # ||a - b|| = 1
    assert relative_drift(a, b) == pytest.approx(0.2)
    assert relative_drift(a, a) == 0.0


def test_side_parsing():
    side = Side.parse("cuda:0:tf32", "--a")
    assert (side.device.kind, side.device.index, side.dtype, side.label()) == (
        "cuda",
        0,
        "tf32",
        "cuda:0:tf32",
    )
    assert Side.parse("cpu:bf16", "--b") == Side(parse_device("cpu"), "bf16")
    with pytest.raises(InputError, match="--a cpu: expected DEVICE:DTYPE"):
        Side.parse("cpu", "--a")
    with pytest.raises(InputError, match="--device tpu: not a device"):
        Side.parse("tpu:fp32", "--a")


def test_same_configuration_is_bit_identical(tmp_path, one_thread):
    path, summary = run_parity(load("smoke"), CPU_FP32, CPU_FP32, 8, str(tmp_path))
    assert summary["bit_identical_losses"] and summary["final_param_rel_drift"] == 0.0
    assert pq.read_table(path).num_rows == 8


def test_bf16_drifts_a_little_and_the_record_is_not_a_run(tmp_path, one_thread):
    path, summary = run_parity(
        load("smoke"), CPU_FP32, Side(parse_device("cpu"), "bf16"), 8, str(tmp_path)
    )
    assert not summary["bit_identical_losses"]
    assert 0 < summary["max_abs_loss_diff"] < 0.05
    assert 0 < summary["final_param_rel_drift"] < 0.05 and math.isfinite(summary["final_loss_diff"])
    with pytest.raises(InputError, match="a nanobench parity record, not a run result"):
        results.read_run(path)
    with pytest.raises(InputError, match="holds no .parquet result files"):
        results.expand_paths([str(tmp_path)])  # folders skip parity records
