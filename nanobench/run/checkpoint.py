"""Checkpoints: everything a run needs to continue bit for bit on the same device.

`nanobench run --checkpoint-every N` replaces `OUT/checkpoints/<run_id>.pt` every N
iterations (temporary name, then rename: the file under its name is always whole). It holds

- the model, optimizer and loss-scaler states;
- `iter`, the next iteration to run: the continuation's rows start there;
- the random streams a step draws from: the CPU's global generator and the device's own
  (dropout masks). Training batches need no state: iteration i's batch is seeded from
  (seed, i) alone, so the data position is the iteration (nanoGPT's resume restores
  neither the generators nor the data position);
- the recorder's running totals (train_time_s, tokens, wall_time_s, evaluations so far);
- identity: run id, resolved scenario, model shape, dataset sha256, seed, run options.

Only tensors, dicts, lists, strings and numbers are stored (the rest as JSON text), so
`torch.load(weights_only=True)` reads it: loading a checkpoint never runs code from it.
"""

from __future__ import annotations

import json
from pathlib import Path

from nanobench import files
from nanobench.errors import InputError
from nanobench.run import scenario as scen

FORMAT = "nanobench-checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoints"


def folder(out_dir: str | Path) -> Path:
    """OUT/checkpoints, refused (InputError) if it leads outside OUT (a symlink)."""
    return files.check_inside(Path(out_dir) / CHECKPOINT_DIR, out_dir, "--checkpoint-every:")


def path_for(out_dir: str | Path, run_id: str) -> Path:
    files.check_name(run_id, "checkpoint name")
    return files.check_inside(folder(out_dir) / f"{run_id}.pt", out_dir, "--checkpoint-every:")


def save(path: Path, *, it: int, model, optimizer, scaler, device, info: dict) -> None:
    """Write the checkpoint of a run about to start iteration `it` on `device` (a Device);
    `info` is plain JSON (run_id, scenario, model_config, dataset_sha256, seed, options,
    recorder)."""
    import torch

    state = {
        "format": FORMAT,
        "version": VERSION,
        "iter": it,
        "info_json": json.dumps(info, sort_keys=True),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_device": device.rng_state(),
        "device_type": device.kind,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(path, lambda f: torch.save(state, f))
    except OSError as exc:
        fix = (
            "free space or drop --checkpoint-every"
            if files.no_space(exc)
            else "fix that or drop --checkpoint-every"
        )
        raise InputError(
            f"{path}: could not write the checkpoint ({files.write_cause(exc)}); {fix}"
        ) from None


def load(path: str | Path) -> dict:
    """Read and check a checkpoint file; InputError naming the file for anything else.
    Returns the stored dict with `info` (parsed) added."""
    import pickle
    import zipfile

    import torch

    p = Path(path)
    if not p.exists():
        raise InputError(
            f"--resume {path}: no such file; checkpoints are written by --checkpoint-every N to OUT/{CHECKPOINT_DIR}/"
        )
    if p.is_dir():
        raise InputError(
            f"--resume {path}: is a folder; give the checkpoint file (OUT/{CHECKPOINT_DIR}/<run_id>.pt)"
        )
    with open(p, "rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        raise InputError(
            f"--resume {path}: a result file, not a checkpoint; resume from OUT/{CHECKPOINT_DIR}/<run_id>.pt"
        )
    if not zipfile.is_zipfile(p):  # torch.save writes a zip archive; its directory is at the end
        raise InputError(
            f"--resume {path}: not a readable checkpoint (truncated, or another kind of file)"
        )
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(
            f"--resume {path}: holds Python objects a nanobench checkpoint never has; "
            "refused (loaded with weights_only=True)"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"--resume {path}: not a readable checkpoint (truncated, or another kind of file: "
            f"{str(exc).splitlines()[0][:80]})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError(f"--resume {path}: a torch file, but not a nanobench checkpoint")
    if ckpt.get("version") != VERSION:
        raise InputError(
            f"--resume {path}: checkpoint version {ckpt.get('version')!r}; this nanobench reads {VERSION}"
        )
    ckpt["info"] = json.loads(ckpt["info_json"])
    return ckpt


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_left(ckpt: dict, path: str | Path, max_iters: int) -> None:
    """Refuse a checkpoint that has nothing left to train before `max_iters`."""
    if ckpt["iter"] >= max_iters:
        raise InputError(
            f"--resume {path}: the checkpoint is at iteration {ckpt['iter']}, "
            f"nothing is left before max_iters {max_iters}; give a larger --max-iters"
        )


def check_compatible(
    ckpt: dict, path: str | Path, scenario: dict, dataset_sha256: str, seed: int
) -> None:
    """Refuse a checkpoint of another scenario, model shape, dataset or seed."""
    info = ckpt["info"]
    mine = _flatten(json.loads(json.dumps(scenario)))  # tuples -> lists, as stored
    theirs = _flatten(info["scenario"])
    differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if differ:
        what = "model shape" if any(k.startswith("model.") for k in differ) else "scenario"
        shown = ", ".join(
            f"{k} = {theirs.get(k)!r} there, {mine.get(k)!r} here" for k in differ[:3]
        )
        raise InputError(
            f"--resume {path}: checkpoint of another {what} "
            f"('{info['scenario']['name']}': {shown}); resume it with the scenario it was made with"
        )
    if info["dataset_sha256"] != dataset_sha256:
        raise InputError(
            f"--resume {path}: checkpoint trained on other text (dataset sha256 {info['dataset_sha256'][:12]}...); "
            f"resume it with the same dataset"
        )
    if info["seed"] != seed:
        raise InputError(
            f"--resume {path}: checkpoint of seed {info['seed']}, not {seed}; drop --seeds when resuming"
        )


def restore(ckpt: dict, model, optimizer, scaler, device) -> bool:
    """Load the states into a freshly built model, optimizer and scaler on `device` (a
    Device). Returns whether the device's random stream was restored (same device kind) or left as seeded (another)."""
    import torch

    from nanobench.run.data import derive_seed

    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])  # moves the moments to the parameters' device
    if ckpt["scaler"]:
        scaler.load_state_dict(ckpt["scaler"])
    if ckpt["device_type"] == device.kind:
        torch.set_rng_state(ckpt["rng_cpu"])
        if ckpt["rng_device"] is not None:
            device.set_rng_state(ckpt["rng_device"])
        return True
    # Another device kind draws other dropout masks anyway; a fresh stream per resume
    # point keeps it from replaying the masks of iteration 0.
    torch.manual_seed(derive_seed(ckpt["info"]["seed"], "dropout", ckpt["iter"]))
    return False


def resume_defaults(
    path: str, scenario_name: str | None, overrides: list[str], seeds: str | None, given: dict
) -> tuple:
    """For `run --resume PATH`: (scenario, [seed], flags). The scenario and every flag not
    given (None in `given`: device, dtype, compile, threads, checkpoint_every) come from the
    checkpoint."""
    from nanobench.measure.device import parse_device

    info = load(path)["info"]
    if seeds:
        raise InputError(
            f"--seeds {seeds}: a resumed run keeps its checkpoint's seed ({info['seed']}); drop --seeds"
        )
    if scenario_name:
        scenario = scen.load(scenario_name, overrides)
    else:
        scenario = scen.from_dict(info["scenario"], overrides, f"{path} (its scenario)")
    parent = info["options"]
    device = given["device"]
    same_kind = device is None or parse_device(device).kind == info["device"]["type"]
    return (
        scenario,
        [info["seed"]],
        {
            "device": device or parent["device"],
            "dtype": given["dtype"] or parent["dtype"],
            "compile": parent["compile"] if given["compile"] is None else given["compile"],
            # Thread count changes CPU sums: keep the parent's on the same kind of device.
            "threads": given["threads"] or (parent["threads"] if same_kind else None),
            "checkpoint_every": given["checkpoint_every"] or parent.get("checkpoint_every"),
        },
    )
