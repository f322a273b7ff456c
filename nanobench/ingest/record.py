"""A parsed log -> rows and metadata in nanobench's result schema, published as a result file
with status `imported`.

Every parser fills a `Parsed`: the recipe in nanobench's scenario keys (`model.n_layer`,
`train.batch_size`, ...), each value with the line it came from, the iterations and the
evaluations it printed. Row semantics are nanobench's (docs/results.md): row `i` holds the
loss of step `i` and the evaluation of the model *after* `i` steps; the final row at
max_iters holds the final evaluation only.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nanobench.errors import InputError
from nanobench.measure import peaks
from nanobench.measure.metrics import flops_per_token
from nanobench.store import results

WARMUP_ITERS = 5  # as `nanobench run` (run/train.py WARMUP_ITERS; a test keeps them equal)
DTYPES = ("fp32", "tf32", "bf16", "fp16")


@dataclass
class Step:
    loss: float | None = None
    step_time_s: float | None = None  # as the log printed it (nanoGPT: evaluation included)
    mfu_reported: float | None = None  # the trainer's own MFU, a fraction
    lr: float | None = None
    grad_norm: float | None = None


@dataclass
class Parsed:
    format: str  # "nanogpt", "llm.c", "csv"
    parser: str  # module and version of the parser that read it
    n_lines: int
    recipe: dict = field(default_factory=dict)  # scenario key ("model.n_layer") -> value
    options: dict = field(default_factory=dict)  # device, dtype, compile, seed
    inferred: list[dict] = field(default_factory=list)  # {"key", "value", "from"}: one per value
    steps: dict[int, Step] = field(default_factory=dict)
    # iter -> (train, val)
    evals: dict[int, tuple[float | None, float]] = field(default_factory=dict)
    # iterations whose time includes an evaluation
    step_includes_eval: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    tokens_per_iter: int | None = None
    n_params: int | None = (
        None  # non-embedding parameter count (nanoGPT's N), when it can be computed
    )
    vocab_size: int | None = None
    dataset: dict | None = None  # nanobench's dataset identity when the log names a known corpus
    last_line_cut: bool = False

    def set(self, key: str, value, source: str) -> None:
        """Record a recipe or option value and where it came from (a later line wins)."""
        section = self.options if key.startswith("options.") else self.recipe
        section[key.split(".", 1)[1] if key.startswith("options.") else key] = value
        self.inferred = [i for i in self.inferred if i["key"] != key] + [
            {"key": key, "value": value, "from": source}
        ]

    @property
    def last_iter(self) -> int | None:
        its = list(self.steps) + list(self.evals)
        return max(its) if its else None


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def non_embedding_params(vocab_size: int, n_layer: int, n_embd: int, bias: bool) -> int:
    """nanoGPT's N (`get_num_params()`): every parameter but the position embedding; the token
    embedding counts once (tied with the LM head). Per layer: attention 4·C², MLP 8·C², two
    LayerNorm weights (plus biases: 2 LayerNorm + 3C + C + 4C + C linear biases)."""
    per_layer = 12 * n_embd * n_embd + 2 * n_embd + (13 * n_embd if bias else 0)
    return n_layer * per_layer + n_embd * (2 if bias else 1) + vocab_size * n_embd


def peak_for(device_type: str, device_name: str | None, dtype: str) -> peaks.Peak:
    """The spec peak an imported run's MFU divides by, or why there is none."""
    if not device_name:
        return peaks.Peak(
            None,
            "no --device-name given (the log does not name its device); the trainer's own "
            "figure is kept as mfu_reported",
        )
    if device_type == "cuda":
        return peaks.gpu_spec_peak(device_name, dtype)
    if device_type == "cpu":
        from nanobench.measure import host

        here = host.cpu_model()
        if device_name.strip() != here:
            return peaks.Peak(
                None,
                f"CPU '{device_name}' is not this machine's ('{here}'): a CPU's spec peak needs "
                f"its cores, clock and SIMD flags; import the log on the machine that ran it",
            )
        from nanobench.measure.device import Device
        from nanobench.measure.precision import Precision

        # threads: torch's default, all physical cores. The rule of nanobench's own runs: a spec
        # that this machine's cached calibration beats is too low, and gives no MFU
        return peaks.spec_for_mfu(
            peaks.cpu_spec_peak(dtype), peaks.cached_peak(Device.cpu(), Precision(dtype))
        )
    return peaks.Peak(None, f"no datasheet table for {device_type} devices ('{device_name}')")


def _scenario_dict(recipe: dict, name: str, description: str) -> dict:
    """A scenario dictionary (as Scenario.to_dict) from recipe keys; absent keys stay absent."""
    out: dict = {"name": name, "description": description}
    for key, value in recipe.items():
        section, _, leaf = key.partition(".")
        if leaf:
            out.setdefault(section, {})[leaf] = value
    return out


def match_scenario(recipe: dict) -> tuple[dict | None, list[str]]:
    """The shipped scenario whose recipe this is (every key the scenario sets, seed and
    sample aside), and otherwise the closest one's differences, one line each."""
    from nanobench.run import scenario as scen

    best_diffs = None
    for name in scen.list_shipped():
        s = scen.load(name).to_dict()
        diffs = []
        for section in ("data", "model", "train", "eval"):
            for leaf, want in s[section].items():
                if (section, leaf) == ("train", "seed"):
                    continue
                key = f"{section}.{leaf}"
                have = recipe.get(key, "(not in the log)")
                same = (
                    isinstance(have, (int, float))
                    and not isinstance(have, bool)
                    and isinstance(want, (int, float))
                    and math.isclose(have, want, rel_tol=1e-9)
                ) or have == want
                if not same:
                    diffs.append(f"{key} = {have!r} here, {want!r} in {name}")
        for key, value in recipe.items():  # keys only the log has (nanoGPT's decay_lr = False, ...)
            section, _, leaf = key.partition(".")
            if section == "nanogpt":
                diffs.append(f"{key} = {value!r}: nanobench has no such setting")
        if not diffs:
            return s, []
        if best_diffs is None or len(diffs) < len(best_diffs):
            best_diffs = diffs  # the closest scenario: its differences name it
    return None, best_diffs or []


def _run_id(scenario: str, device_type: str, dtype: str, sha: str) -> str:
    # the log's hash, not a clock: importing one log twice finds the first import
    prefix = scenario if scenario.startswith("imported-") else f"{scenario}-imported"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{prefix}-{device_type}-{dtype}-{sha[:12]}")


def _scenario_of(parsed: Parsed) -> tuple[dict, list[str]]:
    """The shipped scenario the log's recipe matches, or one named after the recipe's hash;
    and how the closest shipped one differs (match_scenario)."""
    scenario, differs = match_scenario(parsed.recipe)
    if scenario is None:
        recipe_hash = hashlib.sha256(repr(sorted(parsed.recipe.items())).encode()).hexdigest()[:8]
        name = f"imported-{parsed.format.replace('.', '')}-{recipe_hash}"
        scenario = _scenario_dict(
            parsed.recipe,
            name,
            f"recipe of an imported {parsed.format} log (no shipped scenario matches)",
        )
    return scenario, differs


def _flops_per_iter(m: dict, n_params: int | None, tokens_per_iter: int | None) -> int | None:
    """Model FLOPs per iteration from the recipe's model section; None where the log gives no
    model shape, parameter count or tokens per iteration."""
    if not (
        tokens_per_iter
        and n_params
        and all(k in m for k in ("n_layer", "n_head", "n_embd", "block_size"))
    ):
        return None
    head_size = m["n_embd"] // m["n_head"]
    per_token = flops_per_token(n_params, m["n_layer"], m["n_head"], head_size, m["block_size"])
    return per_token * tokens_per_iter


def build(
    parsed: Parsed,
    source: Path,
    sha: str,
    *,
    device_name: str | None = None,
    dtype: str | None = None,
    imported_at: str | None = None,
) -> tuple[list[dict], dict]:
    """Rows and metadata of an imported run. Pure: no file is written."""
    if dtype is not None and dtype not in DTYPES:
        raise InputError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    if not parsed.steps and not parsed.evals:
        raise InputError(
            f"{source}: no training iteration or evaluation in this {parsed.format} log; nothing to import"
        )
    opts = dict(parsed.options)
    if dtype:
        opts["dtype"] = dtype
        parsed.set("options.dtype", dtype, "--dtype")
    opts.setdefault("device", "unknown")
    opts.setdefault("dtype", "unknown")
    device_type = str(opts["device"]).split(":")[0]

    max_iters = parsed.recipe.get("train.max_iters")
    last = parsed.last_iter
    truncated_at = (
        last if isinstance(max_iters, int) and last is not None and last < max_iters else None
    )
    steps = dict(parsed.steps)
    if isinstance(max_iters, int) and max_iters in steps:
        # nanoGPT trains once more after its final evaluation; no evaluation sees that step
        del steps[max_iters]
        parsed.notes.append(
            f"the step printed at iteration {max_iters} (after the final evaluation) is left out: "
            f"nanobench's final row holds the final evaluation only"
        )

    scenario, differs = _scenario_of(parsed)
    tokens_per_iter, n_params = parsed.tokens_per_iter, parsed.n_params
    flops_iter = _flops_per_iter(scenario.get("model", {}), n_params, tokens_per_iter)
    peak = peak_for(device_type, device_name, opts["dtype"])
    if flops_iter is None:
        peak = peaks.Peak(
            None,
            "model FLOPs unknown: the log gives no model shape, tokens per iteration or "
            "vocabulary size (give them as options)",
        )

    rows = _rows(parsed, steps, tokens_per_iter, flops_iter, peak.flops)
    timed = [
        r["step_time_s"]
        for r in rows
        if r["step_time_s"] is not None and not r["step_includes_eval"]
    ]
    meta = {
        "scenario": scenario,
        "options": {
            "device": opts["device"],
            "dtype": opts["dtype"],
            "compile": bool(opts.get("compile", False)),
            "seed": opts.get("seed"),
            "max_iters": max_iters,
            "threads": None,
        },
        "group_id": f"imported-{sha[:12]}",
        "device": {
            "spec": opts["device"],
            "type": device_type,
            "name": device_name or "unknown (not in the log)",
        },
        "dataset": parsed.dataset
        or {"name": parsed.recipe.get("data.dataset", "?"), "sha256": "?"},
        "model": {"n_params": n_params},
        "flops": None
        if flops_iter is None
        else {
            "per_iter": flops_iter,
            "per_token": flops_iter // tokens_per_iter,
            "method": "6N + 12*L*H*Q*T per token (nanoGPT, PaLM appendix B), from the imported recipe",
        },
        "peak_flops": {
            "spec": asdict(peak),
            "measured": asdict(peaks.Peak(None, "not measured: an imported run")),
            "used_for_mfu": asdict(peak),
            "note": None,
        },
        "warmup_iters": WARMUP_ITERS,
        "environment": {},
        "imported": {
            "format": parsed.format,
            "parser": parsed.parser,
            "source": str(source),
            "sha256": sha,
            "lines": parsed.n_lines,
            "imported_at": imported_at or results.utc_now(),
            "inferred": parsed.inferred,
            "notes": parsed.notes,
            "truncated_at_iter": truncated_at,
            "last_line_cut": parsed.last_line_cut,
            # a matching recipe joins that scenario's group in compare; otherwise how the closest differs
            "scenario_match": {
                "scenario": None if differs else scenario["name"],
                "differs": differs,
            },
            "mfu": {
                "column": "mfu: model FLOPs / printed step time / the named device's spec peak",
                "reported_column": "mfu_reported: the trainer's own figure, as printed (nanoGPT: a running "
                "average against an A100's 312 TFLOP/s bf16, whatever the device)",
                "peak": asdict(peak),
            },
        },
        "summary": {
            "iterations": sum(1 for r in rows if r["loss"] is not None),
            "median_step_time_s": _median(timed),
        },
    }
    return rows, meta


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def _rows(
    parsed: Parsed,
    steps: dict[int, Step],
    tokens_per_iter: int | None,
    flops_iter: float | None,
    peak_flops: float | None,
) -> list[dict]:
    """One row per printed iteration or evaluation, in nanobench's columns.

    train_time_s excludes evaluations, as in `nanobench run`: an iteration whose printed
    time includes one counts at the median of the others. A log that prints every k-th
    iteration counts each printed time k times (an estimate, noted in the metadata).
    """
    clean = [
        s.step_time_s
        for i, s in steps.items()
        if s.step_time_s is not None and i not in parsed.step_includes_eval and i >= WARMUP_ITERS
    ]
    typical = _median(clean)
    rows, train_t, wall_t, prev = [], 0.0, 0.0, None
    gaps = set()
    timed_any = any(s.step_time_s is not None for s in steps.values())
    for it in sorted(set(steps) | set(parsed.evals)):
        st = steps.get(it)
        ev = parsed.evals.get(it)
        row = {"iter": it, "warmup": it < WARMUP_ITERS}
        if ev is not None:
            row["eval_train_loss"], row["eval_val_loss"] = ev
        if st is not None:
            gap = it - prev if prev is not None else it + 1
            gaps.add(gap)
            prev = it
            includes_eval = it in parsed.step_includes_eval
            # only a nanoGPT log says how its time was taken; elsewhere unknown (null)
            known = st.step_time_s is not None and parsed.format == "nanogpt"
            row.update(
                loss=st.loss,
                lr=st.lr,
                grad_norm=st.grad_norm,
                mfu_reported=st.mfu_reported,
                step_includes_eval=includes_eval if known else None,
            )
            if tokens_per_iter:
                row["tokens"] = tokens_per_iter * (it + 1)
            if st.step_time_s is not None:
                row["step_time_s"] = st.step_time_s
                wall_t += st.step_time_s * gap
                train_step = typical if includes_eval and typical is not None else st.step_time_s
                train_t += train_step * gap
                row["train_time_s"], row["wall_time_s"] = train_t, wall_t
                if tokens_per_iter:
                    row["tokens_per_s"] = tokens_per_iter / st.step_time_s
                if flops_iter and peak_flops and not includes_eval:
                    row["mfu"] = flops_iter / st.step_time_s / peak_flops
        elif timed_any:  # an evaluation-only row (the final one): the clocks stand where they were
            row["train_time_s"], row["wall_time_s"] = train_t, wall_t
        rows.append({c: row.get(c) for c in results.COLUMNS})
    if timed_any and parsed.step_includes_eval:
        parsed.notes.append(
            "train_time_s: iterations whose printed time includes an evaluation count at the "
            "median step time of the others; wall_time_s sums the printed times as they are"
        )
    if any(g > 1 for g in gaps):
        parsed.notes.append(
            f"the log prints every {max(gaps)}th iteration or so (gaps {sorted(gaps)}): train_time_s and "
            f"wall_time_s count each printed time once per iteration of its gap (an estimate)"
        )
    return rows


def publish(
    parsed: Parsed,
    source: Path,
    out_dir: Path,
    *,
    device_name: str | None = None,
    dtype: str | None = None,
) -> Path:
    """Write the imported run through the result writer, with status `imported`."""
    source = Path(source)
    sha = file_sha256(source)
    rows, meta = build(parsed, source, sha, device_name=device_name, dtype=dtype)
    scenario = meta["scenario"]["name"]
    run_id = _run_id(scenario, meta["device"]["type"], meta["options"]["dtype"], sha)
    existing = Path(out_dir) / f"{run_id}.parquet"
    if existing.exists():
        raise InputError(
            f"{source}: already imported as {existing} (same log, sha256 {sha[:12]}...); "
            f"remove that file to import it again with other options"
        )
    at = meta["imported"]["truncated_at_iter"]
    writer = results.RunWriter(Path(out_dir), run_id, meta)
    writer.append(rows)
    return writer.finish(
        "imported",
        None
        if at is None
        else f"truncated at iteration {at} (the log ends before max_iters {meta['options']['max_iters']})",
    )
