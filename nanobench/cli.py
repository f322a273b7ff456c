"""The command line: parse, call, print, exit code. Nothing here imports torch at module
level, so `nanobench --help` is instant.

Exit codes: 0 success, 1 a regression gate failed, 2 bad input (one line naming the
culprit, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from nanobench.errors import InputError

EXIT_OK, EXIT_GATE, EXIT_INPUT = 0, 1, 2


def _console(stderr: bool = False):
    from rich.console import Console

    # rich honours NO_COLOR, TERM=dumb and non-terminals on its own.
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


class Progress:
    """A rich progress bar on stderr, or plain evaluation lines when stderr is no terminal."""

    def __init__(self, description: str, quiet: bool):
        self.quiet = quiet
        self.console = _console(stderr=True)
        self.bar = None
        self.task = None
        self.description = description
        if not quiet and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self.bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  {task.fields[ms]} ms/iter"), TimeRemainingColumn(),
                console=self.console, transient=True,
            )

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()

    def update(self, row: dict, total: int) -> None:
        if not self.bar:
            return
        if self.task is None:
            self.task = self.bar.add_task(self.description, total=total, loss="-", ms="-")
        self.bar.update(self.task, completed=row["iter"] + 1, loss=f"{row['loss']:.4f}",
                        ms=f"{row['step_time_s'] * 1e3:.1f}")

    def log(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar:
            self.bar.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)


def _parse_seeds(text: str | None) -> list[int | None]:
    if not text:
        return [None]
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--seeds {text}: expected comma-separated integers, e.g. 1337,1338,1339") from None
    if not seeds or any(s < 0 for s in seeds):
        raise InputError(f"--seeds {text}: expected non-negative integers")
    return seeds


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_run(args) -> int:
    from nanobench import scenario as scen

    scenario = scen.load(args.scenario, args.set or [])
    seeds = _parse_seeds(args.seeds)
    if args.max_iters is not None and args.max_iters < 1:
        raise InputError(f"--max-iters {args.max_iters}: must be >= 1")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads}: must be >= 1")

    from nanobench import results
    from nanobench.train import RunOptions, train

    for partial in results.find_partials(args.out):
        recovered = results.recover(partial)
        if recovered:
            print(f"recovered a killed run: {recovered}", file=sys.stderr)

    # SIGTERM ends a run like Ctrl-C: the result file is completed with status `interrupted`.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    outcomes = []
    for seed in seeds:
        opts = RunOptions(device=args.device, dtype=args.dtype, compile=args.compile, threads=args.threads,
                          seed=seed, max_iters=args.max_iters, overrides=tuple(args.set or []), out_dir=args.out)
        label = f"{scenario.name} {args.device} {args.dtype}" + (f" s{seed}" if seed is not None else "")
        with Progress(label, args.quiet) as progress:
            outcome = train(scenario, opts, progress)
        outcomes.append(outcome)
        if not args.json:
            _print_outcome(outcome)
        if outcome.status == "interrupted":
            break
    if args.json:
        print(json.dumps([{"path": str(o.path), "status": o.status, "reason": o.reason, **o.summary} for o in outcomes], indent=1))
    return EXIT_OK if all(o.status == "completed" for o in outcomes) else 130 if outcomes[-1].status == "interrupted" else EXIT_GATE


def _print_outcome(outcome) -> None:
    s = outcome.summary
    console = _console()
    val = f"val loss {s['final_val_loss']:.4f} @{s['final_val_iter']}" if s.get("final_val_loss") is not None else "no evaluation"
    speed = (f"median {s['median_step_time_s'] * 1e3:.1f} ms/iter, {s['median_tokens_per_s']:,.0f} tokens/s"
             if s.get("median_step_time_s") else "no timed steps")
    console.print(f"{outcome.path}  [bold]{outcome.status}[/bold]" + (f" ({outcome.reason})" if outcome.reason else ""))
    console.print(f"  {val}; {speed}; {s['iterations']} iterations, {s['train_time_s']:.1f} s training")


def cmd_scenarios(args) -> int:
    from nanobench import scenario as scen

    rows = []
    for name in scen.list_shipped():
        s = scen.load(name)
        rows.append({"name": name, "description": s.description, "dataset": s.data.dataset,
                     "max_iters": s.train.max_iters, "path": str(scen.SCENARIO_DIR / f"{name}.toml")})
    if args.json:
        print(json.dumps(rows, indent=1))
        return EXIT_OK
    from rich.table import Table

    table = Table("scenario", "description", "dataset", "iters")
    for r in rows:
        table.add_row(r["name"], r["description"], r["dataset"], str(r["max_iters"]))
    _console().print(table)
    return EXIT_OK


def cmd_env(args) -> int:
    from nanobench import envreport

    report = envreport.collect(calibrate=args.calibrate, log=lambda text: print(text, file=sys.stderr) if args.calibrate else None)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        envreport.print_report(report, _console())
    return EXIT_OK


def cmd_recover(args) -> int:
    from nanobench import results

    found = 0
    for folder in args.folders:
        for partial in results.find_partials(folder):
            path = results.recover(partial, force=args.force)
            if path is None:
                print(f"{partial}: its process is still running; not touched (use --force if it is not)", file=sys.stderr)
            else:
                found += 1
                print(f"recovered {path}")
    if not found:
        print("nothing to recover", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nanobench", description="CPU-vs-GPU convergence benchmarks for GPT training.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train a scenario on a device, one result file per seed")
    run.add_argument("scenario", help="a shipped scenario name (see `nanobench scenarios`) or a .toml path")
    run.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto (default cpu)")
    run.add_argument("--dtype", default="fp32", help="fp32, tf32, bf16 or fp16 (default fp32)")
    run.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False, help="torch.compile the model")
    run.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    run.add_argument("--seeds", help="comma-separated seeds, one run each (default: the scenario's seed)")
    run.add_argument("--max-iters", type=int, help="stop after N iterations (the schedule is unchanged)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a scenario key, e.g. train.learning_rate=3e-4")
    run.add_argument("--out", default="results", help="folder for result files (default results/)")
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")
    run.add_argument("--json", action="store_true", help="print outcomes as JSON")
    run.set_defaults(func=cmd_run)

    scen = sub.add_parser("scenarios", help="list shipped scenarios")
    scen.add_argument("--json", action="store_true")
    scen.set_defaults(func=cmd_scenarios)

    env = sub.add_parser("env", help="this machine: devices, peaks, software")
    env.add_argument("--calibrate", action="store_true", help="re-measure the matmul peaks")
    env.add_argument("--json", action="store_true")
    env.set_defaults(func=cmd_env)

    rec = sub.add_parser("recover", help="publish the rows of killed runs as results with status `killed`")
    rec.add_argument("folders", nargs="*", default=["results"])
    rec.add_argument("--force", action="store_true", help="recover even if the recorded process still runs")
    rec.set_defaults(func=cmd_recover)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        for line in str(exc).splitlines():
            print(f"nanobench: error: {line}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("nanobench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
