"""A CSV with at least an iteration column and a loss column, for any other trainer
(TensorBoard's and W&B's CSV exports). Columns are mapped by name, case-insensitively; a
W&B column `RUN - train/loss` is read as `train/loss`. Columns nanobench does not know are
listed in the metadata and left out.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from nanobench.errors import InputError
from nanobench.ingest.record import Parsed, Step

PARSER = "nanobench.ingest.csvlog 1"
ALIASES = {
    "iter": ("iter", "iteration", "step", "_step", "global_step", "trainer/global_step"),
    "loss": ("loss", "train_loss", "train/loss", "training_loss", "trl", "value"),
    "val": ("val_loss", "val/loss", "eval_val_loss", "validation_loss", "eval/loss", "tel"),
    "train_eval": ("eval_train_loss", "train_eval_loss"),
    "step_time_s": ("step_time_s", "time_s", "dt_s"),
    "step_time_ms": ("step_time_ms", "time_ms", "dt_ms", "time"),
    "lr": ("lr", "learning_rate", "train/lr"),
    "grad_norm": ("grad_norm", "norm", "train/grad_norm"),
}


def _name(header: str) -> str:
    name = header.strip().lower()
    return name.split(" - ", 1)[1] if " - " in name else name


def looks_like(path: Path, lines: list[str]) -> bool:
    head = lines[0] if lines else ""
    return path.suffix.lower() == ".csv" or (
        "," in head and any(_name(h) in ALIASES["iter"] for h in head.split(","))
    )


def _number(text: str, path: Path, n: int, column: str) -> float | None:
    text = text.strip()
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(
            f"{path}:{n}: column {column!r} holds {text[:40]!r}, not a number"
        ) from None


def parse(path: Path, text: str) -> Parsed:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(
            f"{path}: empty CSV; expected a header with iter and loss columns"
        ) from None
    cols: dict[str, int] = {}
    ignored = []
    for i, h in enumerate(header):
        role = next((r for r, names in ALIASES.items() if _name(h) in names), None)
        if role and role not in cols:
            cols[role] = i
        else:
            ignored.append(h)
    if "iter" not in cols:
        raise InputError(
            f"{path}:1: no iteration column (one of {', '.join(ALIASES['iter'])}) in the header {header!r}"
        )
    if "loss" not in cols and "val" not in cols:
        raise InputError(
            f"{path}:1: no loss column (one of {', '.join(ALIASES['loss'] + ALIASES['val'])}) in the header"
        )
    out = Parsed(format="csv", parser=PARSER, n_lines=text.count("\n") + (not text.endswith("\n")))
    out.inferred.append(
        {
            "key": "columns",
            "value": {r: header[i] for r, i in cols.items()},
            "from": "line 1 (header)",
        }
    )
    if ignored:
        out.notes.append(f"columns not recorded: {', '.join(ignored)}")
    if "loss" in cols and _name(header[cols["loss"]]) == "value":
        out.notes.append(
            "the column 'Value' (TensorBoard's export of one scalar) is taken as the training loss"
        )
    for n, row in enumerate(reader, 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise InputError(
                f"{path}:{n}: {len(row)} cells, the header has {len(header)}: {','.join(row)[:100]!r}"
            )
        get = {r: _number(row[i], path, n, header[i]) for r, i in cols.items()}
        if get["iter"] is None or get["iter"] != int(get["iter"]) or get["iter"] < 0:
            raise InputError(
                f"{path}:{n}: iteration {row[cols['iter']]!r} is not a non-negative integer"
            )
        it = int(get["iter"])
        if get.get("val") is not None:
            out.evals[it] = (get.get("train_eval"), get["val"])
        t = get.get("step_time_s")
        if t is None and get.get("step_time_ms") is not None:
            t = get["step_time_ms"] / 1e3
        if get.get("loss") is not None or t is not None:
            out.steps[it] = Step(
                loss=get.get("loss"),
                step_time_s=t,
                lr=get.get("lr"),
                grad_norm=get.get("grad_norm"),
            )
    return out
