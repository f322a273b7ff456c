"""`nanobench import`: which parser reads a log, options the log does not carry, and the
result file it becomes."""

from __future__ import annotations

from pathlib import Path

from nanobench.errors import InputError
from nanobench.ingest import csvlog, llmc, nanogpt
from nanobench.ingest.record import Parsed, non_embedding_params, publish

FORMATS = ("nanogpt", "llmc", "csv")
# --set keys that are run options or model facts rather than scenario keys
OPTION_KEYS = {"device": "options.device", "compile": "options.compile", "seed": "options.seed"}
FACT_KEYS = ("vocab_size", "tokens_per_iter")
SECTIONS = ("data", "model", "train", "eval")


def read_text(path: Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: no such file" if not path.exists() else f"{path}: is a folder, not a log file"
        )
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); not a training log") from None


def parse_log(path: Path, fmt: str | None = None) -> Parsed:
    """Read a log with the parser `fmt` names, or the one its content asks for."""
    path = Path(path)
    text = read_text(path)
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise InputError(f"{path}: empty file; not a training log")
    if fmt is None:
        if llmc.looks_like(lines):
            fmt = "llmc"
        elif csvlog.looks_like(path, lines):
            fmt = "csv"
        elif nanogpt.looks_like(lines):
            fmt = "nanogpt"
        else:
            first = next(line.strip() for line in lines if line.strip())
            raise InputError(
                f"{path}:1: not a nanoGPT train.py log, an llm.c main.log or a CSV with iter and loss "
                f"columns: {first[:100]!r}"
            )
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    return {"nanogpt": nanogpt, "llmc": llmc, "csv": csvlog}[fmt].parse(path, text)


def apply_sets(parsed: Parsed, sets: list[str]) -> None:
    """`--set KEY=VALUE`: a scenario key (model.n_layer=12), a run option (device=cpu) or a
    model fact (vocab_size=50257) the log does not carry; each recorded as from --set."""
    from nanobench.run.scenario import parse_override

    for text in sets:
        key, value = parse_override(text)
        where = f"--set {text}"
        if key in OPTION_KEYS:
            parsed.set(OPTION_KEYS[key], value, where)
        elif key in FACT_KEYS:
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{where}: expected a positive integer")
            setattr(parsed, key, value)
            parsed.inferred.append({"key": key, "value": value, "from": where})
        elif key.split(".")[0] in SECTIONS and "." in key:
            parsed.set(key, value, where)
        else:
            raise InputError(
                f"{where}: unknown key {key!r}; give a scenario key (model.n_layer, train.batch_size, ...), "
                f"{', '.join(OPTION_KEYS)} or {', '.join(FACT_KEYS)}"
            )
    r = parsed.recipe
    shape = ("model.n_layer", "model.n_embd")
    if (
        parsed.n_params is None
        and parsed.vocab_size
        and all(isinstance(r.get(k), int) for k in shape)
    ):
        parsed.n_params = non_embedding_params(
            parsed.vocab_size, r["model.n_layer"], r["model.n_embd"], bool(r.get("model.bias"))
        )
    batch = [r.get(k) for k in ("train.batch_size", "train.grad_accum", "model.block_size")]
    if parsed.tokens_per_iter is None and all(isinstance(v, int) for v in batch[::2]):
        parsed.tokens_per_iter = (
            batch[0] * (batch[1] if isinstance(batch[1], int) else 1) * batch[2]
        )


def import_log(
    path,
    out_dir,
    *,
    fmt: str | None = None,
    device_name: str | None = None,
    dtype: str | None = None,
    sets: list[str] = (),
) -> Path:
    parsed = parse_log(Path(path), fmt)
    apply_sets(parsed, list(sets))
    return publish(parsed, Path(path), Path(out_dir), device_name=device_name, dtype=dtype)
