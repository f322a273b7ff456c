"""Speed settings a device cannot run, refused before the first step in one line, from the
limits torch itself checks (a GPU is never here: the CUDA and MPS Device values below stand for
machines that are not, nothing is probed), and the AdamW implementation a run records."""

import pytest
import torch

from nanobench.errors import InputError
from nanobench.measure.device import MPS_NAME, Device
from nanobench.run import settings
from nanobench.run.scenario import load
from nanobench.run.train import make_optimizer

H100 = Device("cuda", 0, "NVIDIA H100 stand-in", (9, 0), True)
A100 = Device("cuda", 0, "NVIDIA A100 stand-in", (8, 0), True)
T4 = Device("cuda", 0, "Tesla T4 stand-in", (7, 5), False)
V100 = Device("cuda", 0, "Tesla V100 stand-in", (7, 0), False)
MPS = Device("mps", None, MPS_NAME)
CPU = Device("cpu", None, "Some CPU")


# ---- cuDNN attention and dropout (issue 25, defect 1) -------------------------------------------


def test_cudnn_attention_refuses_a_dropout_that_is_not_a_sixteenth():
    """sdp_utils.cpp, check_cudnn_dropout: dropout * 16 must be whole. nanoGPT's GPU recipe has
    0.2 (16 x 0.2 = 3.2): its first training step would find no kernel after a passing eval."""
    gpu_recipe = load("shakespeare_char")
    assert gpu_recipe.model.dropout == 0.2
    why = settings.unsupported(H100, "cudnn", None, "bf16", 1, gpu_recipe.model.dropout)
    assert why.startswith(
        "--sdpa cudnn: the scenario's model.dropout = 0.2 is not a multiple of 1/16"
    )
    assert settings.unsupported(H100, "cudnn", None, "bf16", 1, 0.0) is None
    assert settings.unsupported(H100, "cudnn", None, "bf16", 1, 0.125, 90500) is None  # 2/16
    assert settings.unsupported(H100, "flash", None, "bf16", 1, 0.2) is None  # flash takes any


def test_cudnn_9_11_to_9_13_take_no_attention_dropout_at_all():
    """can_use_cudnn_attention: dropout > 0 with 91100 < runtime cuDNN < 91400 is refused."""
    for version, refused in ((91100, False), (91200, True), (91300, True), (91400, False)):
        why = settings.unsupported(H100, "cudnn", None, "bf16", 1, 0.125, lambda v=version: v)
        assert (why is not None) == refused, version
    assert "cuDNN 91200 takes no attention dropout" in settings.unsupported(
        H100, "cudnn", None, "bf16", 1, 0.125, 91200
    )
    asked = []  # the version is asked only when it decides
    settings.unsupported(H100, "cudnn", None, "bf16", 1, 0.0, lambda: asked.append(1))
    assert asked == []


def test_a_run_of_the_gpu_recipe_with_cudnn_is_refused_before_any_file(tmp_path):
    """The whole check as `run` makes it: the scenario is known, so the matrix plan (and, for
    a resumed run, train() before its writer) refuses it up front."""
    from nanobench.run import matrix

    with pytest.raises(InputError, match="no cell of the matrix can run here") as err:
        matrix.expand(
            "all",
            "bf16",
            speed={"sdpa": "cudnn"},
            scenario=load("shakespeare_char"),
            devices=lambda: [H100],
        )
    assert "model.dropout = 0.2 is not a multiple of 1/16" in str(err.value)
    assert list(tmp_path.iterdir()) == []


# ---- flash and cuDNN attention need sm80 (defect 2) --------------------------------------------


@pytest.mark.parametrize("gpu", [T4, V100], ids=["T4 7.5", "V100 7.0"])
@pytest.mark.parametrize("backend", ["flash", "cudnn"])
def test_flash_and_cudnn_attention_are_refused_before_ampere(gpu, backend):
    """check_flash_attention_hardware_support / check_cudnn_hardware_support: sm80 to sm121.
    fp16 is a dtype these GPUs run, so the dtype check alone let `--dtype fp16 --sdpa flash`
    through to the first forward."""
    with pytest.raises(
        InputError, match=rf"^--sdpa {backend}: .* compute capability 7\.\d; .*8\.0\+"
    ):
        settings.check(gpu, "auto", backend, False, None, "fp16")
    settings.check(gpu, "auto", "efficient", False, None, "fp16")  # sm50+
    settings.check(A100, "auto", backend, False, None, "fp16")
    settings.check(A100, "auto", backend, False, None, "bf16")


# ---- AdamW implementations (defect 8) ----------------------------------------------------------


def test_each_device_is_offered_the_adamw_torch_has_for_it():
    """torch 2.13, torch/utils/_foreach_utils.py: fused kernels for mps, cuda, cpu (and others);
    foreach kernels for cuda (not cpu, not mps)."""
    assert settings.optimizers_on("cuda") == ["fused", "foreach", "for-loop"]
    assert settings.optimizers_on("cpu") == ["fused", "for-loop"]
    assert settings.optimizers_on("mps") == ["fused", "for-loop"]
    settings.check(MPS, "fused", "auto", False, None)  # exists on MPS: no longer refused
    for device in (CPU, MPS):
        with pytest.raises(
            InputError, match=r"^--optimizer foreach: torch .* has no foreach AdamW on"
        ):
            settings.check(device, "foreach", "auto", False, None)
    settings.check(H100, "foreach", "auto", False, None)
    assert settings.auto_optimizer(CPU) == "fused" and settings.auto_optimizer(H100) == "fused"
    assert settings.auto_optimizer(MPS) == "for-loop"  # torch's own default there


@pytest.mark.parametrize("choice", ["auto", "fused", "for-loop"])
def test_the_recorded_implementation_is_the_one_torch_ran(choice, monkeypatch, own_random_stream):
    """Spies on torch's three AdamW functions say which one a step called; `implementation`
    must name it (before: `foreach` on a CPU ran the for-loop and was recorded as foreach)."""
    import torch.optim.adam as adam

    model = torch.nn.Linear(4, 3)
    called = []
    for name in ("_fused_adam", "_multi_tensor_adam", "_single_tensor_adam"):
        real = getattr(adam, name)
        monkeypatch.setattr(
            adam, name, lambda *a, _n=name, _r=real, **k: called.append(_n) or _r(*a, **k)
        )
    t = load("smoke").train
    optimizer = make_optimizer(model, t, **settings.adamw_choice(choice, CPU))
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    ran = {
        "_fused_adam": "fused",
        "_multi_tensor_adam": "foreach",
        "_single_tensor_adam": "for-loop",
    }[called[0]]
    assert settings.implementation(optimizer) == ran
    assert ran == {"auto": "fused", "fused": "fused", "for-loop": "for-loop"}[choice]
    # torch's default with nothing asked (what `auto` runs on MPS), on CPU parameters: for-loop
    plain = torch.optim.AdamW(model.parameters())
    assert settings.implementation(plain) == "for-loop"
