"""llm.c's main.log (`-o DIR`): one line per logged step, `s:N` then `key:value` fields.

    s:N trl:X [lr:Y norm:Z]   the training loss of step N (and its learning rate, gradient norm)
    s:N tel:X                 the validation loss of the model after N steps
    s:N eval:X                HellaSwag accuracy (read, not recorded: nanobench has no column for it)

The log names no model, batch or device: give them with --set (model.n_layer=12, ...).
"""

from __future__ import annotations

import re
from pathlib import Path

from nanobench.errors import InputError
from nanobench.ingest.record import Parsed, Step

PARSER = "nanobench.ingest.llmc 1"
_LINE = re.compile(r"s:(?P<it>\d+)(?P<fields>(?: +[a-z_]+:\S+)+)")
_FIELD = re.compile(r"([a-z_]+):(\S+)")
FIELDS = {"trl": "loss", "tel": "val", "lr": "lr", "norm": "grad_norm", "eval": None}


def looks_like(lines: list[str]) -> bool:
    first = next((x.strip() for x in lines if x.strip()), "")
    return bool(_LINE.fullmatch(first))


def parse(path: Path, text: str) -> Parsed:
    lines = text.split("\n")
    cut = not text.endswith("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = Parsed(format="llm.c", parser=PARSER, n_lines=len(lines))
    hellaswag = 0
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        m = _LINE.fullmatch(line)
        fields = dict(_FIELD.findall(m["fields"])) if m else {}
        unknown = [k for k in fields if k not in FIELDS]
        try:
            values = {k: float(v) for k, v in fields.items()}
        except ValueError:
            values = None
        if not m or unknown or values is None:
            if n == len(lines) and cut:
                out.last_line_cut = True
                out.notes.append(f"the last line is cut off and left out: {line[:80]!r}")
                break
            what = f" (unknown field {unknown[0]!r})" if m and unknown else ""
            raise InputError(
                f"{path}:{n}: cannot place this line in an llm.c main.log{what}: {line[:100]!r}"
            )
        it = int(m["it"])
        if "tel" in values:
            out.evals[it] = (None, values["tel"])
        if "trl" in values:
            out.steps[it] = Step(
                loss=values["trl"], lr=values.get("lr"), grad_norm=values.get("norm")
            )
        hellaswag += "eval" in values
    if hellaswag:
        out.notes.append(f"{hellaswag} HellaSwag accuracy lines (eval:) read and not recorded")
    out.notes.append("llm.c's main.log has no step times: timing columns are null")
    out.set(
        "options.device",
        "cuda",
        "llm.c's main.log comes from train_gpt2cu (give --set device=cpu for train_gpt2.c)",
    )
    out.set("options.compile", False, "llm.c is compiled C/CUDA, not torch.compile")
    out.set(
        "options.dtype", "bf16", "llm.c's default build (PRECISION=BF16); give --dtype for another"
    )
    return out
