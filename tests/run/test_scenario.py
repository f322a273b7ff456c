import dataclasses

import pytest

from nanobench.errors import InputError
from nanobench.run import scenario as scen


def write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_shipped_scenarios_load_with_nanogpt_values():
    cpu = scen.load("shakespeare_char_cpu")
    assert (cpu.model.n_layer, cpu.model.n_head, cpu.model.n_embd, cpu.model.block_size) == (
        4,
        4,
        128,
        64,
    )
    assert (cpu.train.batch_size, cpu.train.max_iters, cpu.eval.iters) == (12, 2000, 20)
    gpu = scen.load("shakespeare_char")
    assert (gpu.model.n_layer, gpu.model.n_head, gpu.model.n_embd, gpu.model.block_size) == (
        6,
        6,
        384,
        256,
    )
    assert (gpu.train.batch_size, gpu.train.max_iters, gpu.model.dropout, gpu.eval.iters) == (
        64,
        5000,
        0.2,
        200,
    )
    assert scen.load("smoke").data.dataset == "synthetic"
    assert set(scen.list_shipped()) >= {"smoke", "shakespeare_char", "shakespeare_char_cpu"}


def test_every_error_is_reported_at_once_with_file_and_key(tmp_path):
    p = write(
        tmp_path,
        'name = "x"\nbogus = 1\n[model]\nn_head = "four"\nwidth = 3\n[train]\nlearning_rate = true\n',
    )
    with pytest.raises(InputError) as err:
        scen.load(str(p))
    lines = str(err.value).splitlines()
    assert len(lines) == 4
    assert all(line.startswith(str(p)) for line in lines)
    text = str(err.value)
    assert "bogus: unknown key" in text
    assert "model.n_head: expected integer, got str 'four'" in text
    assert "model.width: unknown key" in text
    assert "train.learning_rate: expected number, got bool True" in text


def test_values_that_cannot_train_are_rejected(tmp_path):
    p = write(
        tmp_path,
        'name = "x"\n[model]\nn_embd = 130\nn_head = 4\nblock_size = 0\n'
        "[train]\nlearning_rate = -1.0\n[eval]\ninterval = 0\n",
    )
    with pytest.raises(InputError) as err:
        scen.load(str(p))
    text = str(err.value)
    assert "model.n_embd: 130 is not divisible by model.n_head = 4" in text
    assert "model.block_size: must be >= 1" in text
    assert "train.learning_rate: must be > 0" in text
    assert "eval.interval: must be >= 1" in text


def test_toml_syntax_error_names_line_and_column(tmp_path):
    p = write(tmp_path, 'name = "x"\n[model\n')
    with pytest.raises(InputError, match=r"s\.toml: TOML syntax error: .*line 2"):
        scen.load(str(p))


def test_unknown_scenario_lists_shipped_ones():
    with pytest.raises(InputError, match="unknown scenario 'nope' \\(shipped: .*smoke"):
        scen.load("nope")


def test_overrides_are_typed_and_checked():
    s = scen.load(
        "smoke",
        ["train.learning_rate=1e-2", "model.n_layer=2", "data.dataset=synthetic", "eval.iters=3"],
    )
    assert s.train.learning_rate == 0.01 and s.model.n_layer == 2 and s.eval.iters == 3
    with pytest.raises(InputError, match="model.n_layer: expected integer, got float 2.5"):
        scen.load("smoke", ["model.n_layer=2.5"])
    with pytest.raises(InputError, match="train.nope: unknown key"):
        scen.load("smoke", ["train.nope=1"])
    with pytest.raises(InputError, match="expected key=value"):
        scen.load("smoke", ["train.learning_rate"])


def test_override_value_may_contain_equals():
    key, value = scen.parse_override('sample.prompt="a=b"')
    assert (key, value) == ("sample.prompt", "a=b")


def test_scenario_is_frozen():
    s = scen.load("smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.train.max_iters = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.model = None
    assert s.train.max_iters == 30
