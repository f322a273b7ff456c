"""What nanoGPT's train.py prints, read back into a recipe, iterations and evaluations.

The lines it prints (stdout; with `2>&1` Python warnings come along, and are passed over):

    Overriding config with FILE:        then FILE's text (Python assignments and comments)
    Overriding: KEY = VALUE             a --key=value argument
    tokens per iteration will be: N
    found vocab_size = V (inside PATH)  or "defaulting to vocab_size of GPT-2 to 50304 ..."
    number of parameters: X.XXM
    step N: train loss X, val loss Y    an evaluation of the model after N steps
    iter N: loss X, time Yms, mfu Z%    step N: its last micro-batch's loss, the seconds since
                                        the previous print (an evaluation at N included),
                                        a running MFU against an A100's 312 TFLOP/s (-100%: none yet)

A recipe key the log does not print takes nanoGPT's default (train.py), and the metadata
says so. Any other line is refused, naming it: a log we cannot place is not guessed at.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from nanobench.errors import InputError
from nanobench.ingest.record import Parsed, Step, non_embedding_params

PARSER = "nanobench.ingest.nanogpt 1"

# train.py's defaults (the values before any config file or argument), by nanoGPT's names.
DEFAULTS = {
    "eval_interval": 2000,
    "log_interval": 1,
    "eval_iters": 200,
    "init_from": "scratch",
    "dataset": "openwebtext",
    "gradient_accumulation_steps": 40,
    "batch_size": 12,
    "block_size": 1024,
    "n_layer": 12,
    "n_head": 12,
    "n_embd": 768,
    "dropout": 0.0,
    "bias": False,
    "learning_rate": 6e-4,
    "max_iters": 600000,
    "weight_decay": 0.1,
    "beta1": 0.9,
    "beta2": 0.95,
    "grad_clip": 1.0,
    "decay_lr": True,
    "warmup_iters": 2000,
    "lr_decay_iters": 600000,
    "min_lr": 6e-5,
    "device": "cuda",
    "compile": True,
}
SEED = 1337  # torch.manual_seed(1337 + rank offset): rank 0 prints

# nanoGPT name -> nanobench scenario key
RECIPE_KEYS = {
    "n_layer": "model.n_layer",
    "n_head": "model.n_head",
    "n_embd": "model.n_embd",
    "block_size": "model.block_size",
    "dropout": "model.dropout",
    "bias": "model.bias",
    "batch_size": "train.batch_size",
    "gradient_accumulation_steps": "train.grad_accum",
    "max_iters": "train.max_iters",
    "learning_rate": "train.learning_rate",
    "min_lr": "train.min_lr",
    "warmup_iters": "train.warmup_iters",
    "lr_decay_iters": "train.lr_decay_iters",
    "weight_decay": "train.weight_decay",
    "beta1": "train.beta1",
    "beta2": "train.beta2",
    "grad_clip": "train.grad_clip",
    "eval_interval": "eval.interval",
    "eval_iters": "eval.iters",
}
# nanoGPT's datasets that are nanobench's corpora (its prepare.py downloads the same file)
DATASETS = {"shakespeare_char": "tinyshakespeare"}

_NUM = r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf)"
PATTERNS = [
    ("config_file", re.compile(r"Overriding config with (?P<file>.+):")),
    ("override", re.compile(r"Overriding: (?P<key>\w+) = (?P<value>.*)")),
    ("tokens", re.compile(r"tokens per iteration will be: (?P<n>[\d,]+)")),
    ("vocab", re.compile(r"found vocab_size = (?P<n>\d+) \(inside (?P<path>.+)\)")),
    ("vocab_default", re.compile(r"defaulting to vocab_size of GPT-2 to (?P<n>\d+).*")),
    ("params", re.compile(r"number of parameters: (?P<m>[\d.]+)M")),
    (
        "eval",
        re.compile(rf"step (?P<it>\d+): train loss (?P<train>{_NUM}), val loss (?P<val>{_NUM})"),
    ),
    (
        "iter",
        re.compile(
            rf"iter (?P<it>\d+): loss (?P<loss>{_NUM}), time (?P<ms>{_NUM})ms, mfu (?P<mfu>{_NUM})%"
        ),
    ),
    ("init", re.compile(r"Initializing a new model from scratch")),
    ("resume", re.compile(r"Resuming training from (?P<dir>.+)")),
    (
        "pretrained",
        re.compile(
            r"Initializing from OpenAI GPT-2 weights: (?P<name>.+)"
            r"|loading weights from pretrained gpt: .+|forcing vocab_size=.+|overriding dropout rate to .+"
        ),
    ),
    (
        "info",
        re.compile(
            r"num (?:non-)?decayed parameter tensors: .+|using fused AdamW: (?:True|False)"
            r"|compiling the model\.\.\. .*|saving checkpoint to .+"
        ),
    ),
    # with 2>&1: a Python warning, its source line (indented) and wandb's chatter
    ("warning", re.compile(r"\S.*:\d+: \w*Warning: .*|wandb: .*")),
]


def _literal(text: str):
    """A value as nanoGPT's configurator would take it: a Python literal, else the string."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def looks_like(lines: list[str]) -> bool:
    """True when some line is one only nanoGPT prints."""
    return any(
        PATTERNS[0][1].fullmatch(x) or PATTERNS[6][1].fullmatch(x) or PATTERNS[7][1].fullmatch(x)
        for x in (line.strip() for line in lines[:5000])
    )


def _config_line(stripped: str) -> list[tuple[str, object]] | None:
    """The `name = value` assignments of a line of the config file train.py echoes (a value
    computed, e.g. time.time(), kept as its text); None when the line is not Python a config
    file holds, and so belongs to the log itself."""
    try:
        tree = ast.parse(stripped)
    except SyntaxError:
        return None
    if any(isinstance(x, ast.Expr) and not isinstance(x.value, ast.Call) for x in tree.body):
        return None  # a bare expression ("n_head is two") parses, yet no config file line is one
    assigned = []
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = ast.unparse(node.value)
            assigned.append((node.targets[0].id, value))
    return assigned


def parse(path: Path, text: str) -> Parsed:
    lines = text.split("\n")
    cut = not text.endswith("\n")  # a log of a killed run may end mid-line
    if lines and lines[-1] == "":
        lines.pop()
    out = Parsed(format="nanogpt", parser=PARSER, n_lines=len(lines))
    values: dict[str, tuple[object, str]] = {}  # nanoGPT name -> (value, where it came from)
    in_config, after_warning = None, False
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        kind, m = next(
            ((k, p.fullmatch(stripped)) for k, p in PATTERNS if p.fullmatch(stripped)), (None, None)
        )
        if kind is None and after_warning and line[:1].isspace():
            after_warning = False  # the warning's source line
            continue
        after_warning = kind == "warning"
        if kind is None and in_config is not None:
            if not stripped or stripped.startswith("#"):
                continue
            assigned = _config_line(stripped)
            if assigned is not None:
                where = f"line {n} (config file {in_config}): {stripped}"
                values.update((name, (value, where)) for name, value in assigned)
                continue
        if kind is None:
            if n == len(lines) and cut:
                out.last_line_cut = True
                out.notes.append(f"the last line is cut off and left out: {stripped[:80]!r}")
                break
            raise InputError(
                f"{path}:{n}: cannot place this line in a nanoGPT train.py log: {stripped[:100]!r}"
            )
        if kind != "config_file":
            in_config = None
        where = f"line {n}: {stripped}"
        if kind == "config_file":
            in_config = m["file"]
        elif kind == "override":
            values[m["key"]] = (_literal(m["value"]), where)
        elif kind == "tokens":
            out.tokens_per_iter = int(m["n"].replace(",", ""))
        elif kind in ("vocab", "vocab_default"):
            out.vocab_size = int(m["n"])
            out.inferred.append({"key": "vocab_size", "value": out.vocab_size, "from": where})
        elif kind == "params":
            out.inferred.append({"key": "n_params_printed", "value": f"{m['m']}M", "from": where})
        elif kind == "eval":
            out.evals[int(m["it"])] = (float(m["train"]), float(m["val"]))
        elif kind == "iter":
            it = int(m["it"])
            mfu = float(m["mfu"])
            # -100%: not yet estimated
            out.steps[it] = Step(
                loss=float(m["loss"]),
                step_time_s=float(m["ms"]) / 1e3,
                mfu_reported=None if mfu < 0 else mfu / 100,
            )
            if it in out.evals:
                out.step_includes_eval.add(it)
        elif kind == "resume":
            values["init_from"] = ("resume", where)
        elif kind == "pretrained" and m["name"]:
            values["init_from"] = (m["name"], where)
    _recipe(out, values)
    return out


def _dtype(device, dtype, src: str) -> tuple[str, str]:
    """(nanobench's dtype, where it came from) of a run on `device` given nanoGPT's `dtype`
    setting as printed (None: not printed) and where it was printed."""
    if not str(device).startswith("cuda"):
        return (
            "fp32",
            f"device {device}: nanoGPT runs without autocast off CUDA, so fp32 "
            f"whatever dtype says" + (f" ({dtype})" if dtype else ""),
        )
    if dtype is not None:
        # nanoGPT turns TF32 on for CUDA matmuls: its float32 is tf32
        ours = {"float32": "tf32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, str(dtype))
        return ours, src
    return (
        "bf16",
        "nanoGPT's default on a GPU with bf16 (Ampere and newer; float16 on older "
        "ones: give --dtype fp16)",
    )


def _recipe(out: Parsed, values: dict) -> None:
    """nanoGPT's settings (printed or default) -> nanobench's scenario keys and options."""

    def get(name):
        if name in values:
            return values[name]
        return DEFAULTS[name], "nanoGPT's default (train.py); the log does not print it"

    for name, key in RECIPE_KEYS.items():
        out.set(key, *get(name))
    dataset, src = get("dataset")
    out.set("data.dataset", DATASETS.get(dataset, dataset), src)
    if dataset in DATASETS:
        from nanobench.run.data import TINYSHAKESPEARE_SHA256

        out.dataset = {
            "name": DATASETS[dataset],
            "sha256": TINYSHAKESPEARE_SHA256,
            "source": f"nanoGPT data/{dataset} (inferred: its prepare.py downloads the same file; "
            f"the log carries no hash)",
        }
    decay, src = get("decay_lr")
    if decay is not True:
        out.set("nanogpt.decay_lr", decay, src)  # a constant learning rate: no nanobench scenario
    init, src = get("init_from")
    if init != "scratch":
        out.set("nanogpt.init_from", init, src)  # resumed or fine-tuned: not a run from scratch
        out.notes.append(f"init_from = {init}: the log does not start from freshly drawn weights")

    device, src = get("device")
    out.set("options.device", device, src)
    compiled, src = get("compile")
    out.set("options.compile", bool(compiled), src)
    out.set("options.seed", SEED, "nanoGPT seeds torch with 1337 (+ rank) in train.py")
    out.set("options.dtype", *_dtype(device, *values.get("dtype", (None, ""))))

    r = out.recipe
    if out.vocab_size and all(isinstance(r.get(k), int) for k in ("model.n_layer", "model.n_embd")):
        out.n_params = non_embedding_params(
            out.vocab_size, r["model.n_layer"], r["model.n_embd"], bool(r.get("model.bias"))
        )
        printed = next((i["value"] for i in out.inferred if i["key"] == "n_params_printed"), None)
        if printed and abs(float(printed[:-1]) - out.n_params / 1e6) > 0.006:
            out.notes.append(
                f"the recipe gives {out.n_params / 1e6:.2f}M parameters but the log printed {printed}: "
                f"a setting the log does not show differs; MFU and FLOPs may be off"
            )
    gas = r.get("train.grad_accum")
    if isinstance(gas, int) and gas > 1:
        out.notes.append(
            f"loss: nanoGPT prints the last of {gas} micro-batches' losses (times {gas}), "
            f"not their mean as nanobench records"
        )
    log_interval, _ = get("log_interval")
    if log_interval != 1:
        out.notes.append(
            f"log_interval = {log_interval}: nanoGPT printed one iteration in {log_interval}"
        )
