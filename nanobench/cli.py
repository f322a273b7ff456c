"""The command line: parse, call, print, exit code. Nothing here imports torch at module
level, so `nanobench --help` is instant.

Exit codes: 0 success, 1 a regression gate failed, 2 bad input (one line naming the
culprit, no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading

from nanobench import files, process
from nanobench.errors import InputError

EXIT_OK, EXIT_GATE, EXIT_INPUT = 0, 1, 2  # success; a --fail-on gate failed; bad input
EXIT_INCOMPLETE = 4  # a run (or a cell of a plan) did not complete: diverged, failed, killed
EXIT_UNJUDGED = (
    3  # a timing gate refused to pass or fail noisy runs (compare --allow-noisy judges them)
)


def _console(stderr: bool = False):
    from rich.console import Console

    # rich honours NO_COLOR, TERM=dumb and non-terminals on its own. Piped into a file,
    # tables get 200 columns (not rich's 80) unless COLUMNS says otherwise.
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 200
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


class RunDisplay:
    """A rich progress bar on stderr, or plain evaluation lines when stderr is no terminal."""

    def __init__(self, description: str, quiet: bool):
        self.quiet = quiet
        self.console = _console(stderr=True)
        self.bar = None
        self.task = None
        self.description = description
        if not quiet and self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  {task.fields[ms]} ms/iter"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
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
        self.bar.update(
            self.task,
            completed=row["iter"] + 1,
            loss=f"{row['loss']:.4f}",
            ms=f"{row['step_time_s'] * 1e3:.1f}",
        )

    def log(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar:
            self.bar.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)


def _check_list(flag: str, text: str | None) -> None:
    """A comma list given on the command line has no empty item: `--seeds ""` or `--dtype fp32,`
    is a mistake to name, never a silent default (leaving the flag out gives the default)."""
    if text is not None and any(not item.strip() for item in text.split(",")):
        raise InputError(
            f"{flag} {text!r}: an empty {'list' if not text.strip() else 'item in the list'}; "
            f"give comma-separated values (e.g. {flag} {LIST_EXAMPLES[flag]}) or leave {flag} out"
        )


LIST_EXAMPLES = {
    "--seeds": "1337,1338",
    "--device": "cpu,cuda",
    "--dtype": "fp32,bf16",
    "--axes": "dtype,compile",
}


def _parse_seeds(text: str | None) -> list[int | None]:
    if text is None:
        return [None]
    _check_list("--seeds", text)
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(
            f"--seeds {text}: expected comma-separated integers, e.g. 1337,1338,1339"
        ) from None
    if not seeds or any(s < 0 for s in seeds):
        raise InputError(f"--seeds {text}: expected non-negative integers")
    return seeds


def _check_margin(margin: float, of: str = "val loss") -> None:
    """Every --margin (compare, report, explain; tune's of lockstep loss) is nats, above 0."""
    if not margin > 0:
        raise InputError(f"--margin {margin}: must be > 0 (nats of {of})")


def cmd_run(args) -> int:
    from nanobench.run import distributed, executors
    from nanobench.run import plan as plans

    child = bool(os.environ.get(distributed.CHILD_ENV))  # a torchrun worker of one cell
    scenario, request = _run_request(args, child)
    if args.executor != "local" and (child or args.resume):
        raise InputError(f"--executor {args.executor}: a resumed run continues here; drop one")
    # the engine's options are checked before anything is stored
    engine = {"submitit": _submitit_options, "ray": _ray_options}.get(args.executor, lambda a: None)
    engine_options = engine(args)
    cells, said = plans.build_cells(
        request, scenario, here=args.executor == "local" and not child and not args.resume
    )
    for line in said:
        print(f"nanobench: {line}", file=sys.stderr)
    plan, todo, made = _plan_of(args, scenario, cells, child)
    if not todo:  # --continue, and every cell is completed or still running
        return _print_status(plan, as_json=args.json)
    if args.executor == "local":
        return _run_here(args, plan, todo, scenario, child, made)
    if args.executor == "submitit":
        jobs = executors.submit_submitit(plan, todo, engine_options, process.stderr_log())
        if not args.wait:
            print(f"follow it: nanobench status {args.out} (exit 0 once every cell completed)")
            return EXIT_OK
        executors.wait_submitit(plan, jobs, process.stderr_log(args.quiet))
    else:
        executors.run_ray(plan, todo, engine_options, process.stderr_log(args.quiet))
    return _print_status(plan, as_json=args.json)


def _run_request(args, child: bool) -> tuple:
    """`run`'s scenario and its flags as a plan request, every check that needs no device made
    (torch is imported only after them, so those mistakes are told at once rather than after a
    second of `import torch`)."""
    from nanobench.run import scenario as scen

    for flag, text in (("--seeds", args.seeds), ("--device", args.device), ("--dtype", args.dtype)):
        _check_list(flag, text)
    # the flags a resumed run takes from its checkpoint where they are not given (None)
    given = {
        "device": args.device,
        "dtype": args.dtype,
        "compile": args.compile,
        "threads": args.threads,
        "checkpoint_every": args.checkpoint_every,
    }
    if args.resume:
        from nanobench.run import checkpoint, matrix

        if matrix.wants_matrix(args.device, args.dtype):
            raise InputError(
                "--resume: a resumed run continues one device and dtype; give one --device and --dtype"
            )
        scenario, seeds, flags = checkpoint.resume_defaults(
            args.resume, args.scenario, args.set or [], args.seeds, given
        )
    elif not args.scenario:
        raise InputError("run: give a SCENARIO (see `nanobench scenarios`) or --resume CHECKPOINT")
    else:
        scenario = scen.load(args.scenario, args.set or [])
        seeds = _parse_seeds(args.seeds)
        flags = given | {
            "device": args.device or "cpu",
            "dtype": args.dtype or "fp32",
            "compile": bool(args.compile),
        }
    if args.max_iters is not None and args.max_iters < 1:
        raise InputError(f"--max-iters {args.max_iters}: must be >= 1")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads}: must be >= 1")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise InputError(
            f"--checkpoint-every {args.checkpoint_every}: must be >= 1 (iterations between checkpoints)"
        )
    return scenario, _request(args, flags, seeds, child)


def _request(args, flags: dict, seeds: list, child: bool):
    """The run's flags as a plan request (run/plan.py builds the cells from it). flags: device,
    dtype, compile, threads and checkpoint_every with their defaults (a resumed run's: from its
    checkpoint where not given)."""
    from nanobench.run import plan as plans

    speed = {k: getattr(args, k) for k in plans.SPEED_FLAGS if getattr(args, k) is not None}
    if not args.best:  # compile and threads as chosen (a resumed run's: its checkpoint's)
        speed = dict(speed, compile=flags["compile"]) | (
            {"threads": flags["threads"]} if flags["threads"] else {}
        )
    return plans.Request(
        scenario=args.scenario or "",
        overrides=tuple(args.set or []),
        device=flags["device"],
        dtype=flags["dtype"],
        seeds=tuple(seeds),
        speed=speed,
        best=args.best,
        from_tune_record=args.from_tune_record,
        max_iters=args.max_iters,
        checkpoint_every=flags["checkpoint_every"],
        resume=args.resume,
        nproc=None if child else args.nproc,
        nnodes=args.nnodes,
        allow_slow=args.allow_slow,
    )


def _plan_of(args, scenario, cells: list, child: bool) -> tuple:
    """The plan to run, the cells of it to run now, and the folders storing it made (None:
    not a new plan): a new plan stored in OUT, or with --continue the stored plan of the
    same cells, minus those completed. A torchrun worker runs its launcher's cell, under
    its launcher's plan id, and stores nothing."""
    from nanobench.run import executors
    from nanobench.run import plan as plans

    if child:
        plan_id = os.environ.get(executors.GROUP_ENV) or plans.new_plan_id(scenario.name)
        cell_id = os.environ.get(executors.CELL_ENV)
        cells = [dataclasses.replace(c, id=cell_id) for c in cells] if cell_id else cells
        return plans.Plan(plan_id, args.out, tuple(cells)), cells, None
    if args.continue_:
        found = plans.matching(args.out, cells)
        if found is None:
            raise InputError(
                f"--continue: no plan in {args.out}/{plans.PLANS_DIR}/ has the cells of this "
                f"command; run it without --continue (or give the --out it used)"
            )
        todo = plans.to_run(found)
        done = len(found.cells) - len(todo)
        print(
            f"nanobench: continuing plan {found.plan_id}: {done} of {len(found.cells)} cells "
            f"have a completed result or still run; running {len(todo)}",
            file=sys.stderr,
        )
        return found, todo, None
    # One id for the runs of this invocation (every cell and seed); NANOBENCH_GROUP_ID joins
    # separate invocations, and the machines of one multi-node job share their --rdzv-id.
    plan_id = (
        os.environ.get(executors.GROUP_ENV)
        or (args.rdzv_id if (args.nnodes or 1) > 1 else None)
        or plans.new_plan_id(scenario.name)
    )
    files.check_name(
        plan_id, "NANOBENCH_GROUP_ID" if os.environ.get(executors.GROUP_ENV) else "plan id"
    )
    rdzv = {
        "nnodes": args.nnodes,
        "node_rank": args.node_rank,
        "rdzv_backend": args.rdzv_backend,
        "rdzv_endpoint": args.rdzv_endpoint,
        "rdzv_id": args.rdzv_id,
    }
    plan = plans.Plan(
        plan_id,
        args.out,
        tuple(cells),
        tuple(sorted((k, v) for k, v in rdzv.items() if v is not None)),
        _utc_now(),
    )
    made = plans.folders_to_make(plan)
    plan.save()
    return plan, cells, made


def _utc_now() -> str:
    from nanobench.store.results import utc_now

    return utc_now()


@contextlib.contextmanager
def _stop_signals(child: bool = False):
    """While the local executor runs: SIGTERM (Windows: Ctrl-Break or closing the console) ends
    a run like Ctrl-C, the result file completed with status `interrupted`. A torchrun worker
    only notes the stop: the ranks agree on it at a read window and stop together, so none is
    left waiting in a collective (see distributed.Dist.should_stop). The handlers before are
    put back after (explain and tune go on once their plan has run)."""
    from nanobench.run import distributed, executors

    stop = distributed.request_stop if child else executors.StopOnce()
    before = {signum: signal.signal(signum, stop) for signum in process.stop_signals()}
    finished = threading.Event()  # the console-close handler holds the process until it is set
    close_handler = process.on_console_close(finished)  # noqa: F841 (kept alive for ctypes)
    try:
        yield
    finally:
        finished.set()
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _run_here(args, plan, cells: list, scenario, child: bool, made: list | None) -> int:
    """The local executor, with this terminal's progress display and stop signals. made:
    the folders a new plan's saving made, taken away with it when its first cell is refused."""
    from nanobench.run import executors, matrix

    # torchrun workers other than rank 0 record nothing (no path); a data-parallel cell's
    # launcher leaves the printing to its rank 0 (it has no summary)
    report = lambda o: _print_outcome(o) if o.path and o.summary and not args.json else None  # noqa: E731
    show = lambda label: RunDisplay(label, args.quiet)  # noqa: E731
    try:
        with _stop_signals(child):
            outcomes = executors.run_local(
                plan,
                cells,
                show,
                report,
                args.quiet,
                args.json,
                scenario if len({c.scenario for c in cells}) == 1 else None,
                sweep=not child,
            )
    except InputError:
        # refused before any cell left a trace: a new plan goes too, nothing is written
        if made is not None:
            from nanobench.run import plan as plans

            plans.discard(plan, made)
        raise
    if args.json and any(o.path and o.summary for o in outcomes):
        print(
            json.dumps(
                [
                    {"path": o.path, "status": o.status, "reason": o.reason, **o.summary}
                    for o in outcomes
                    if o.summary
                ],
                indent=1,
            )
        )
    is_matrix = matrix.wants_matrix(args.device, args.dtype)
    if is_matrix and not args.json and any(o.path for o in outcomes):
        _print_comparison([o.path for o in outcomes if o.path])
    if not outcomes:
        return EXIT_OK
    last = outcomes[-1]
    if last.status == "interrupted" or last.stop_requested:
        # a torchrun worker stopped by the launcher exits 0; the launcher reports the stop
        return EXIT_OK if child else 130
    return EXIT_OK if all(o.status == "completed" for o in outcomes) else EXIT_INCOMPLETE


def _per_kind(text_list: list[str] | None, flag: str) -> dict:
    """`--slurm-partition gpu` (every kind) or `--slurm-partition cuda=gpu --slurm-partition
    cpu=cpu` (one per device kind) -> {kind or "": value}."""
    table = {}
    for text in text_list or []:
        kind, sep, value = text.partition("=")
        if not sep:
            kind, value = "", text
        if kind not in ("", "cpu", "cuda", "mps") or not value:
            raise InputError(
                f"{flag} {text}: expected VALUE or KIND=VALUE with KIND cpu, cuda or mps"
            )
        table[kind] = value
    return table


def _submitit_options(args):
    from nanobench.run import executors

    if args.slurm_time is not None and args.slurm_time < 1:
        raise InputError(f"--slurm-time {args.slurm_time}: must be >= 1 (minutes)")
    return executors.SubmititOptions(
        cluster=args.submitit_cluster,
        partition=_per_kind(args.slurm_partition, "--slurm-partition"),
        gres=_per_kind(args.slurm_gres, "--slurm-gres"),
        timeout_min=args.slurm_time or 60,
    )


def _ray_options(args):
    from nanobench.run import executors

    if args.ray_cpus is not None and args.ray_cpus < 1:
        raise InputError(f"--ray-cpus {args.ray_cpus}: must be >= 1")
    return executors.RayOptions(
        address=args.ray_address,
        num_cpus=args.ray_cpus,
        accelerator=_per_kind(args.ray_accelerator, "--ray-accelerator"),
    )


def _print_status(plan, as_json: bool = False) -> int:
    """The plan's cells as OUT holds them; exit 0 only when every one completed."""
    from nanobench.present import status
    from nanobench.run import plan as plans

    states = plans.cell_states(plan)
    if as_json:
        print(json.dumps(status.to_json(plan, states, plans.STATES), indent=1))
    else:
        status.render_status(plan, states, _console(), plans.STATES)
    return EXIT_OK if all(s.state == "completed" for s in states) else EXIT_INCOMPLETE


def cmd_status(args) -> int:
    from nanobench.run import plan as plans

    if not os.path.isdir(args.folder):
        raise InputError(f"{args.folder}: no such folder; give the --out folder of a run")
    if args.all and args.plan:
        raise InputError("status: --all shows every plan; drop --plan or --all")
    if args.all:
        chosen = [plans.load(args.folder, p.stem) for p in plans.stored(args.folder)]
        if not chosen:
            plans.load(args.folder)  # says that none is stored there
    else:
        chosen = [plans.load(args.folder, args.plan)]
    import time

    while args.wait and any(
        s.state == "running" for plan in chosen for s in plans.cell_states(plan)
    ):
        time.sleep(args.poll_s)
    if args.json and args.all:  # one JSON document: a list of plans
        from nanobench.present import status

        shown = [(plan, plans.cell_states(plan)) for plan in chosen]
        print(json.dumps([status.to_json(p, st, plans.STATES) for p, st in shown], indent=1))
        done = all(s.state == "completed" for _, st in shown for s in st)
        return EXIT_OK if done else EXIT_INCOMPLETE
    return max(_print_status(plan, args.json) for plan in chosen)


def _print_comparison(paths: list[str]) -> None:
    """After a matrix: the comparison of what it ran, as `nanobench compare` prints it."""
    from nanobench.analyze import compare
    from nanobench.present import tables

    print(file=sys.stdout)
    tables.render_comparison(compare.compare_files(paths), _console())


def _print_outcome(outcome) -> None:
    s = outcome.summary
    console = _console()
    val = (
        f"val loss {s['final_val_loss']:.4f} @{s['final_val_iter']}"
        if s.get("final_val_loss") is not None
        else "no evaluation"
    )
    speed = (
        f"median {s['median_step_time_s'] * 1e3:.1f} ms/iter, {s['median_tokens_per_s']:,.0f} tokens/s"
        if s.get("median_step_time_s")
        else "no timed steps"
    )
    console.print(
        f"{outcome.path}  [bold]{outcome.status}[/bold]"
        + (f" ({outcome.reason})" if outcome.reason else "")
    )
    console.print(
        f"  {val}; {speed}; {s['iterations']} iterations, {s['train_time_s']:.1f} s training"
    )


def cmd_scenarios(args) -> int:
    from nanobench.run import scenario as scen

    rows = []
    for name in scen.list_shipped():
        s = scen.load(name)
        rows.append(
            {
                "name": name,
                "description": s.description,
                "dataset": s.data.dataset,
                "max_iters": s.train.max_iters,
                "path": str(scen.SCENARIO_DIR / f"{name}.toml"),
            }
        )
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
    from nanobench.present import envreport

    if args.check:
        from nanobench.measure import envcheck

        facts = envcheck.gather()
        envreport.print_checks(envcheck.checks(facts), facts, _console(), as_json=args.json)
        return EXIT_OK
    from nanobench.measure.survey import survey
    from nanobench.run import tune

    report = survey(
        calibrate=args.calibrate,
        log=process.stderr_log(quiet=not args.calibrate),
    )
    report |= {"tune_records": tune.load_records(), "tune_file": str(tune.record_path())}
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        envreport.print_report(report, _console())
    return EXIT_OK


def cmd_recover(args) -> int:
    from nanobench.store import results

    found = 0
    for folder in args.folders:
        if not os.path.isdir(folder):
            raise InputError(
                f"{folder}: no such folder; give the --out folder of the killed run (default results/)"
            )
        for partial in results.find_partials(folder):
            path = results.recover(partial, force=args.force)
            if path is None:
                print(
                    f"{partial}: its process is still running; not touched (use --force if it is not)",
                    file=sys.stderr,
                )
            else:
                found += 1
                print(f"recovered {path}")
    if not found:
        print("nothing to recover", file=sys.stderr)
    return EXIT_OK


def cmd_parity(args) -> int:
    from nanobench.run import scenario as scen

    scenario = scen.load(args.scenario, args.set or [])
    from nanobench.run.parity import Side, run_parity

    a, b = Side.parse(args.a, "--a"), Side.parse(args.b, "--b")
    every = max(1, args.iters // 10)

    def progress(row, total):
        if not args.quiet and (row["iter"] + 1) % every == 0:
            print(
                f"iter {row['iter']}: loss {row['loss_a']:.5f} vs {row['loss_b']:.5f} "
                f"(diff {row['loss_diff']:+.2e}), parameter drift {row['param_rel_drift']:.2e}",
                file=sys.stderr,
            )

    path, summary = run_parity(
        scenario, a, b, args.iters, args.out, seed=args.seed, progress=progress
    )
    if args.json:
        print(json.dumps({"path": str(path), **summary}, indent=1))
    else:
        print(
            f"{path}\n  {a.label()} vs {b.label()} over {summary['iters']} iterations: "
            f"max |loss diff| {summary['max_abs_loss_diff']:.3e} (iteration {summary['max_abs_loss_diff_iter']}), "
            f"final loss diff {summary['final_loss_diff']:+.3e}, "
            f"final parameter drift {summary['final_param_rel_drift']:.3e}"
            + (" - bit-identical losses" if summary["bit_identical_losses"] else "")
        )
    return EXIT_OK


def cmd_tune(args) -> int:
    from nanobench.present import tuning
    from nanobench.run import scenario as scen
    from nanobench.run import tune

    _check_list("--device", args.device)
    _check_list("--axes", args.axes)
    scenario = scen.load(args.scenario, args.set or [])
    axes = tuple(a.strip() for a in args.axes.split(",") if a.strip()) if args.axes else tune.AXES
    unknown = [a for a in axes if a not in tune.AXES]
    if unknown or not axes:
        raise InputError(f"--axes {args.axes}: use some of {', '.join(tune.AXES)}")
    _check_margin(args.margin, of="loss")
    runs = tune.TuneRuns(
        args.scenario,
        tuple(args.set or []),
        args.out or str(tune.runs_dir()),
        lambda plan, cells: _run_plan_here(plan, cells, args.quiet),
        args.continue_,
        args.passes,
    )
    result = tune.tune(
        scenario,
        args.device,
        runs,
        iters=args.iters,
        margin=args.margin,
        axes=axes,
        log=process.stderr_log(args.quiet),
    )
    key = None if args.dry_run else tune.save(result, scenario)
    tuning.print_tune(result, _console(), key)
    return EXIT_OK


def _run_plan_here(plan, cells: list, quiet: bool, deadline=None) -> list:
    """The local executor for the plans of tune and explain --run: a progress display per
    cell, one line per result on stderr (their stdout is their own answer), stop signals as
    `run`'s."""
    from nanobench.run import executors

    def report(result) -> None:
        if not quiet:
            where = f" {result.path}" if result.path else ""
            why = f" ({result.reason})" if result.reason else ""
            print(
                f"nanobench: {result.cell} {plan.cell(result.cell).label}: {result.status}{why}{where}",
                file=sys.stderr,
                flush=True,
            )

    def show(label: str) -> RunDisplay:
        if deadline is not None and not quiet:
            print(
                f"nanobench: running {label} ({deadline.left_s():.0f} s of budget left)",
                file=sys.stderr,
                flush=True,
            )
        return RunDisplay(label, quiet)

    with _stop_signals():
        return executors.run_local(
            plan,
            cells,
            show,
            report,
            True,
            False,
            deadline=deadline,
        )


def _load_comparison(args):
    from nanobench.analyze import compare

    _check_margin(args.margin)
    comparison = compare.compare_files(
        args.paths,
        skip_bad=args.skip_bad,
        margin=args.margin,
        reference_config=getattr(args, "reference", None),
    )
    for line in comparison.skipped:
        print(f"nanobench: skipped: {line}", file=sys.stderr)
    return comparison


def cmd_compare(args) -> int:
    from nanobench.analyze import compare, export
    from nanobench.analyze import gates as gating
    from nanobench.present import tables

    gates = gating.parse_gates(args.fail_on) if args.fail_on else None
    if gates and not args.baseline:
        raise InputError("--fail-on needs --baseline PATHS: the runs to compare against")
    comparison = _load_comparison(args)
    results, ungated = None, None
    if args.baseline:
        base = compare.compare_files(args.baseline, skip_bad=args.skip_bad)
        results, ungated = gating.check_gates(
            comparison, base, gates or [], allow_noisy=args.allow_noisy
        )
    if args.json:
        print(json.dumps(export.to_json(comparison, results, ungated), indent=1))
    else:
        tables.render_comparison(comparison, _console(), results, ungated)
    if results and any(r.passed is False for r in results):
        return EXIT_GATE
    return EXIT_UNJUDGED if results and any(r.passed is None for r in results) else EXIT_OK


def cmd_report(args) -> int:
    from nanobench.analyze.explain import explain_comparison
    from nanobench.present import report

    comparison = _load_comparison(args)
    explanations = explain_comparison(
        comparison, [tuple(args.explain)] if args.explain else [], args.margin
    )
    path = report.write_report(
        comparison, args.output, title=args.title, explanations=explanations, stills=args.stills
    )
    print(path)
    return EXIT_OK


def cmd_board(args) -> int:
    from nanobench.analyze.board import board_files
    from nanobench.present import board as present

    fmt = args.format or ("html" if args.output else "table")
    if fmt == "html" and not args.output:
        raise InputError("--format html: give the folder for index.html with -o DIR")
    _check_margin(args.margin)
    board, refreshed = board_files(
        args.paths,
        include_noisy=args.include_noisy,
        baseline=args.baseline,
        margin=args.margin,
        write_index=not args.no_index,
    )
    print(
        f"nanobench: board of {refreshed.n_files} files ({refreshed.n_read} read, the rest from "
        f"the index)",
        file=sys.stderr,
    )
    if fmt == "table":
        present.render_board(board, _console())
    elif fmt == "html":
        print(present.write_html(board, args.output, title=args.title))
    else:
        text = {"md": present.to_markdown, "csv": present.to_csv, "json": present.to_json_text}[fmt]
        sys.stdout.write(text(board))
        if fmt == "csv":  # the table only: what was left out goes beside it
            for x in board.left_out:
                print(
                    f"nanobench: left out: {present.printable(present.left_out_line(x))}",
                    file=sys.stderr,
                )
    if not board.tables:
        print("nanobench: no usable run among these files", file=sys.stderr)
        return EXIT_INPUT
    return EXIT_OK


def _parse_duration(text: str) -> float:
    """'10m', '90s', '1h30m', '600' (seconds) -> seconds."""
    import re

    parts = re.fullmatch(
        r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text or ""
    )
    if not text or not parts or not any(parts.groups()):
        raise InputError(f"--budget {text}: expected a time such as 10m, 90s or 1h30m")
    h, m, s = (float(x) if x else 0.0 for x in parts.groups())
    return h * 3600 + m * 60 + s


def _here():
    """This machine's devices, torch and a measured-peak function, for planning explain's runs."""
    import torch

    from nanobench.analyze.missing import Here
    from nanobench.measure import peaks
    from nanobench.measure.device import available_kinds, resolve
    from nanobench.measure.precision import Precision

    devices = {kind: resolve(kind) for kind in available_kinds()}

    def here_peak(kind: str, dtype: str):
        device = devices[kind]
        peak = peaks.measured_peak(device, Precision.for_device(dtype, device))
        return peak.flops, peak.source

    return Here({k: d.name for k, d in devices.items()}, torch.__version__), here_peak


def cmd_explain(args) -> int:
    from nanobench.analyze import explain, missing
    from nanobench.present.explain import render_explanation

    _check_margin(args.margin)
    budget_s = _parse_duration(args.budget)
    pool = list(
        args.results
        if args.results is not None
        else (["results"] if os.path.isdir("results") else [])
    )
    # the runs --run makes go where the ladder is read from: the first --results folder
    args.out = args.out or (args.results[0] if args.results else "results")
    pool += [args.out] if args.run and os.path.isdir(args.out) and args.out not in pool else []
    here, here_peak = _here()

    planning = explain.Planning(args.out, here, here_peak, budget_s)

    def build(ends=None):
        return explain.explain_endpoints(
            args.a, args.b, pool, args.order, args.margin, planning, ends
        )

    result = build()
    if args.run:
        chosen = missing.run_order(result.missing, result.ladder.results, budget_s)
        if not chosen:
            print("nanobench: nothing to run here within the budget", file=sys.stderr)
        else:
            _run_rungs([p.argv for p in chosen], args.out, budget_s, args.budget)
            pool += [args.out] if args.out not in pool else []
            result = build(result.ends)  # the same A and B, though A's folder may now hold more
    if args.json:
        print(json.dumps(explain.to_json(result), indent=1))
    else:
        render_explanation(result, _console())


def _run_rungs(commands: list[tuple[str, ...]], out: str, budget_s: float, budget: str) -> None:
    """explain --run: the `nanobench run` commands explain chose, each parsed as `run` parses
    it, made into one plan in OUT and run here by the local executor within the budget (the
    run going when it ends is completed as interrupted; none starts after)."""
    from nanobench.run import executors
    from nanobench.run import plan as plans

    say = process.stderr_log(prefix="nanobench: ")
    parser, cells = build_parser(), []
    for argv in commands:
        scenario, request = _run_request(parser.parse_args(["run", *argv]), child=False)
        made = plans.build_cells(request, scenario)[0]
        cells += made
        say(f"nanobench run {' '.join(argv)}: {len(made)} cell{'s' * (len(made) > 1)}")
    rungs = plans.Plan(
        plans.new_plan_id("explain"), out, tuple(plans.numbered(cells)), created_utc=_utc_now()
    )
    rungs.save()
    say(f"plan {rungs.plan_id} in {out} (`nanobench status {out}` lists its cells)")
    deadline = executors.Deadline.after(budget_s, f"stopped at the end of the {budget} budget")
    try:
        done = _run_plan_here(rungs, list(rungs.cells), quiet=False, deadline=deadline)
    except InputError as exc:
        # a rung this machine refused (as each rung's own process once did): the explanation
        # of what exists still follows, and `nanobench status` shows what did not run
        say(f"warning: a rung was refused, the rest not run: {exc}")
        return
    if any(
        (d.status == "interrupted" or d.stop_requested)
        and not (d.reason or "").startswith(deadline.why)
        for d in done
    ):
        raise KeyboardInterrupt  # Ctrl-C or SIGTERM, not the budget: explain stops too


def cmd_import(args) -> int:
    from nanobench.ingest.importer import import_log
    from nanobench.store import results

    for log in args.logs:
        path = import_log(
            log,
            args.out,
            fmt=args.format,
            device_name=args.device_name,
            dtype=args.dtype,
            sets=args.set or [],
        )
        info = results.read_run(path).info
        match = info.raw["imported"]["scenario_match"]
        where = (
            f"scenario {match['scenario']}"
            if match["scenario"]
            else f"its own group ({info.scenario_name}): no shipped scenario matches, e.g. {match['differs'][0]}"
        )
        print(
            f"{path}  [{info.shown_status}] {info.imported.format} log, {info.summary['iterations']} "
            f"iterations; grouped with {where}"
        )
    return EXIT_OK


PATHS_HELP = "result files, folders (searched recursively) or globs"


def _add_paths(parser) -> None:
    parser.add_argument("paths", nargs="+", help=PATHS_HELP)


def _add_skip_bad(parser) -> None:
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable files (listed on stderr) instead of stopping",
    )


def _add_margin(
    parser, help: str = "equivalence margin in nats of val loss (TOST; default 0.02)"
) -> None:
    parser.add_argument("--margin", type=float, default=0.02, help=help)


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="train a scenario on a device, one result file per seed")
    run.add_argument(
        "scenario",
        nargs="?",
        help="a shipped scenario name (see `nanobench scenarios`) or a .toml path",
    )
    run.add_argument(
        "--device",
        help="cpu, cuda, cuda:N, mps, auto, a comma list, or all: every device here "
        "(default cpu; with --resume the checkpoint's)",
    )
    run.add_argument(
        "--dtype",
        help="fp32, tf32, bf16, fp16 or a comma list: with several devices or dtypes every "
        "cell runs (default fp32; with --resume the checkpoint's)",
    )
    run.add_argument(
        "--allow-slow",
        action="store_true",
        help="with --device all: also run bf16 on a CPU that only emulates it (skipped otherwise)",
    )
    _add_speed_settings(run)
    run.add_argument(
        "--seeds", help="comma-separated seeds, one run each (default: the scenario's seed)"
    )
    run.add_argument(
        "--max-iters", type=int, help="stop after N iterations (the schedule is unchanged)"
    )
    run.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. train.learning_rate=3e-4",
    )
    run.add_argument("--out", default="results", help="folder for result files (default results/)")
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")
    run.add_argument("--json", action="store_true", help="print outcomes as JSON")
    run.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="write OUT/checkpoints/<run_id>.pt every N iterations (replaced each time)",
    )
    run.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        help="continue the run of a checkpoint in a new result file (same device: bit-identical)",
    )
    _add_data_parallel(run)
    _add_executor(run)
    run.set_defaults(func=cmd_run)


def _add_speed_settings(run) -> None:
    """The flags of store.meta.Settings (and --best, which takes them from the tune record)."""
    run.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the model",
    )
    run.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    run.add_argument(
        "--compile-mode", help="torch.compile mode with --compile (reduce-overhead: CUDA graphs)"
    )
    run.add_argument(
        "--optimizer",
        help="AdamW implementation: auto (the device's), fused, foreach or for-loop (as torch has them there)",
    )
    run.add_argument("--sdpa", help="attention backend: auto, math, flash, efficient or cudnn")
    run.add_argument(
        "--best",
        action="store_true",
        help="the device's fastest loss-equivalent settings from `nanobench tune` (tunes first if needed)",
    )
    # internal: `--nproc --best` passes the record's settings to its workers as flags, and this
    # so that they record `best` like a single-process `--best` run
    run.add_argument("--from-tune-record", action="store_true", help=argparse.SUPPRESS)


def _add_data_parallel(run) -> None:
    ddp = run.add_argument_group("data-parallel (torchrun, DistributedDataParallel)")
    ddp.add_argument(
        "--nproc", type=int, help="ranks on this machine: gloo on cpu, NCCL on cuda (one GPU each)"
    )
    ddp.add_argument("--nnodes", type=int, help="machines in the job (torchrun --nnodes)")
    ddp.add_argument("--node-rank", type=int, help="this machine's rank (torchrun --node-rank)")
    ddp.add_argument(
        "--rdzv-endpoint", help="HOST:PORT of the rendezvous (torchrun --rdzv-endpoint)"
    )
    ddp.add_argument(
        "--rdzv-backend", default=None, help="rendezvous backend (torchrun default: c10d)"
    )
    ddp.add_argument("--rdzv-id", help="job id shared by every machine (torchrun --rdzv-id)")


def _add_executor(run) -> None:
    plan = run.add_argument_group(
        "where the cells run (one cell: a device, dtype, settings and seed; see docs/DESIGN.md)"
    )
    plan.add_argument(
        "--executor",
        choices=("local", "submitit", "ray"),
        default="local",
        help="local: here, one cell after another (default); submitit: a SLURM job array "
        "(local processes where there is no SLURM); ray: one Ray task per cell",
    )
    plan.add_argument(
        "--continue",
        dest="continue_",
        action="store_true",
        help="run only the cells of this command's stored plan in --out without a completed result",
    )
    plan.add_argument(
        "--wait",
        action="store_true",
        help="with --executor submitit: wait for every cell, then print its status",
    )
    plan.add_argument(
        "--slurm-partition",
        action="append",
        metavar="[KIND=]PARTITION",
        help="SLURM partition, or one per device kind (cuda=gpu --slurm-partition cpu=cpu)",
    )
    plan.add_argument(
        "--slurm-gres", action="append", metavar="[KIND=]GRES", help="SLURM gres, e.g. cuda=gpu:1"
    )
    plan.add_argument(
        "--slurm-time", type=int, metavar="MINUTES", help="each cell's time limit (default 60)"
    )
    plan.add_argument(
        "--submitit-cluster",
        choices=("slurm", "local", "debug"),
        help="submitit's cluster (default: slurm where SLURM is, else local processes)",
    )
    plan.add_argument("--ray-address", help="a Ray cluster's address (default: start a local one)")
    plan.add_argument("--ray-cpus", type=int, help="CPUs of the local Ray cluster (default: all)")
    plan.add_argument(
        "--ray-accelerator",
        action="append",
        metavar="[KIND=]TYPE",
        help="Ray accelerator type a cell asks for, e.g. cuda=A100",
    )


def _add_status(sub) -> None:
    sta = sub.add_parser(
        "status", help="the cells of the plan stored in a run's --out: completed, running, failed"
    )
    sta.add_argument("folder", metavar="DIR", help="the --out folder of a run")
    sta.add_argument("--plan", help="the plan id (default: the newest plan stored in DIR)")
    sta.add_argument("--all", action="store_true", help="every plan stored in DIR, oldest first")
    sta.add_argument("--wait", action="store_true", help="wait until no cell is running")
    sta.add_argument("--poll-s", type=float, default=5.0, help=argparse.SUPPRESS)
    sta.add_argument("--json", action="store_true", help="machine-readable output")
    sta.set_defaults(func=cmd_status)


def _add_scenarios(sub) -> None:
    scen = sub.add_parser("scenarios", help="list shipped scenarios")
    scen.add_argument("--json", action="store_true")
    scen.set_defaults(func=cmd_scenarios)


def _add_env(sub) -> None:
    env = sub.add_parser("env", help="this machine: devices, peaks, software")
    env.add_argument("--calibrate", action="store_true", help="re-measure the matmul peaks")
    env.add_argument(
        "--check",
        action="store_true",
        help="what on this machine will make timings noisy, with the command that fixes each (changes nothing)",
    )
    env.add_argument("--json", action="store_true")
    env.set_defaults(func=cmd_env)


def _add_parity(sub) -> None:
    par = sub.add_parser(
        "parity", help="train two device:dtype configurations in lockstep and record their drift"
    )
    par.add_argument("scenario")
    par.add_argument("--a", required=True, help="first side, DEVICE:DTYPE (e.g. cpu:fp32)")
    par.add_argument("--b", required=True, help="second side, DEVICE:DTYPE (e.g. cpu:bf16)")
    par.add_argument("--iters", type=int, default=200, help="lockstep iterations (default 200)")
    par.add_argument("--seed", type=int, help="seed (default: the scenario's)")
    par.add_argument("--set", action="append", metavar="KEY=VALUE")
    par.add_argument("--out", default="results/parity")
    par.add_argument("--quiet", action="store_true")
    par.add_argument("--json", action="store_true")
    par.set_defaults(func=cmd_parity)


def _add_tune(sub) -> None:
    tun = sub.add_parser(
        "tune", help="find and record a device's fastest settings that stay loss-equivalent"
    )
    tun.add_argument("scenario")
    tun.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto (default cpu)")
    tun.add_argument(
        "--iters", type=int, default=60, help="iterations of each candidate's run (default 60)"
    )
    tun.add_argument(
        "--margin",
        type=float,
        default=0.02,
        help="largest |loss - fp32 eager loss| of an equivalent candidate, in nats (default 0.02)",
    )
    tun.add_argument(
        "--axes",
        help="settings to try, comma-separated (default all: dtype,compile,threads,optimizer,sdpa)",
    )
    tun.add_argument("--set", action="append", metavar="KEY=VALUE")
    tun.add_argument("--dry-run", action="store_true", help="print the table, record nothing")
    tun.add_argument(
        "--out",
        help="folder for the candidates' runs, one plan per round (default: ~/.cache/nanobench/"
        "tune-runs, so that they never mix with results/)",
    )
    tun.add_argument(
        "--passes",
        type=int,
        default=2,
        help="runs of each candidate per round, every pass in the reverse order of the one "
        "before (default 2: A B C, C B A)",
    )
    tun.add_argument(
        "--continue",
        dest="continue_",
        action="store_true",
        help="run only the candidates of each round without a completed result in --out",
    )
    tun.add_argument("--quiet", action="store_true")
    tun.set_defaults(func=cmd_tune)


def _add_compare(sub) -> None:
    cmp = sub.add_parser(
        "compare", help="compare result files: per run, per device pair, time to target"
    )
    _add_paths(cmp)
    cmp.add_argument("--json", action="store_true", help="machine-readable output")
    _add_skip_bad(cmp)
    cmp.add_argument(
        "--baseline",
        nargs="+",
        metavar="PATH",
        help="earlier runs to gate against (same configurations)",
    )
    cmp.add_argument(
        "--fail-on",
        metavar="GATES",
        help="e.g. ms_per_iter:5%%,val_loss:0.02; exit 1 when one fails",
    )
    cmp.add_argument(
        "--allow-noisy",
        action="store_true",
        help="judge timing gates (ms_per_iter, tokens_per_s, train_time_s) even on runs recorded as noisy",
    )
    _add_margin(cmp)
    cmp.add_argument(
        "--reference",
        metavar="CONFIG",
        help="the configuration every other is compared with, by its label as printed (e.g. "
        "'cpu fp32', 'cuda bf16 (NVIDIA H100)'); default: the rule printed beside the baseline. "
        "Not --baseline, which names earlier runs for --fail-on gates",
    )
    cmp.set_defaults(func=cmd_compare)


def _add_report(sub) -> None:
    rep = sub.add_parser(
        "report",
        help="write an HTML report of result files (index.html with interactive figures, offline)",
    )
    _add_paths(rep)
    rep.add_argument(
        "-o", "--output", default="reports/latest", help="output folder (default reports/latest)"
    )
    rep.add_argument("--title", default="nanobench report", help="the page title")
    _add_skip_bad(rep)
    _add_margin(rep)
    rep.add_argument(
        "--reference",
        metavar="CONFIG",
        help="the configuration every other is compared with, by its label (as compare --reference)",
    )
    rep.add_argument(
        "--explain",
        nargs=2,
        metavar=("A", "B"),
        help="add `nanobench explain A B` over the report's runs (files, folders or SCENARIO:DEVICE:DTYPE)",
    )
    rep.add_argument(
        "--stills",
        action="store_true",
        help="also write a PNG of every figure (figures/), for e-mail or PDF where no script runs",
    )
    rep.set_defaults(func=cmd_report)


def _add_board(sub) -> None:
    brd = sub.add_parser(
        "board",
        help="one table of every machine's runs: per hardware x dtype x settings, speed, time to target",
    )
    brd.add_argument(
        "paths",
        nargs="+",
        help="result files, folders (searched recursively) or globs, from any machines",
    )
    brd.add_argument(
        "--format",
        choices=("table", "md", "csv", "json", "html"),
        help="table (default), md to paste into a discussion, csv, json (docs/board.md), html (with -o)",
    )
    brd.add_argument(
        "-o", "--output", metavar="DIR", help="write index.html (and plotly.min.js) here"
    )
    brd.add_argument("--title", default="nanobench board", help="the page title (html)")
    brd.add_argument(
        "--include-noisy",
        action="store_true",
        help="count runs recorded noisy in the medians (default: left out, counted)",
    )
    brd.add_argument(
        "--baseline",
        metavar="TEXT",
        help="the reference row: the one whose label holds TEXT (default: the slowest CPU row)",
    )
    _add_margin(brd)
    brd.add_argument(
        "--no-index",
        action="store_true",
        help="write no .nanobench-index (read-only folders; the next board reads every file again)",
    )
    brd.set_defaults(func=cmd_board)


def _add_explain(sub) -> None:
    exp = sub.add_parser(
        "explain",
        help="split the gap between two configurations into one part per differing factor",
    )
    exp.add_argument(
        "a",
        metavar="A",
        help="result file, folder of one configuration's seeds, or SCENARIO:DEVICE:DTYPE[:compile]",
    )
    exp.add_argument("b", metavar="B", help="the same, for the other end")
    exp.add_argument(
        "--results",
        nargs="*",
        metavar="PATH",
        help="where to look for the rungs' runs (default results/, if present)",
    )
    exp.add_argument(
        "--order",
        help="rung order: device-first (default), device-last, or factor names, e.g. "
        "iterations,model,device",
    )
    exp.add_argument(
        "--run",
        action="store_true",
        help="run the missing rungs this machine can finish within --budget",
    )
    exp.add_argument(
        "--budget",
        default="10m",
        help="time for --run, and the longest run planned here before a "
        "short probe replaces it (default 10m)",
    )
    exp.add_argument(
        "--out",
        help="folder the rungs' runs are written to (default: the first --results folder, else "
        "results/), and read back from",
    )
    _add_margin(exp, "equivalence margin in nats, for projected losses")
    exp.add_argument("--json", action="store_true", help="machine-readable output")
    exp.set_defaults(func=cmd_explain)


def _add_import(sub) -> None:
    imp = sub.add_parser(
        "import",
        help="turn training logs of nanoGPT, llm.c or a CSV into result files (status imported)",
    )
    imp.add_argument(
        "logs",
        nargs="+",
        metavar="LOG",
        help="nanoGPT train.py output, llm.c main.log, or a CSV with iter and loss",
    )
    imp.add_argument(
        "--device-name",
        help="the GPU or CPU that ran it, as torch names it (e.g. 'NVIDIA A100-SXM4-80GB'): "
        "MFU is recomputed against its peak; without it MFU is null",
    )
    imp.add_argument("--dtype", help="fp32, tf32, bf16 or fp16, when the log does not say")
    imp.add_argument(
        "--format",
        choices=("nanogpt", "llmc", "csv"),
        help="the log's format (default: from its content)",
    )
    imp.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="what the log does not say: model.n_layer=12, train.batch_size=4, device=cpu, vocab_size=50257",
    )
    imp.add_argument("--out", default="results", help="folder for result files (default results/)")
    imp.set_defaults(func=cmd_import)


def _add_recover(sub) -> None:
    rec = sub.add_parser(
        "recover", help="publish the rows of killed runs as results with status `killed`"
    )
    rec.add_argument("folders", nargs="*", default=["results"])
    rec.add_argument(
        "--force", action="store_true", help="recover even if the recorded process still runs"
    )
    rec.set_defaults(func=cmd_recover)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nanobench", description="CPU-vs-GPU convergence benchmarks for GPT training."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_run,
        _add_status,
        _add_scenarios,
        _add_env,
        _add_parity,
        _add_tune,
        _add_compare,
        _add_report,
        _add_board,
        _add_explain,
        _add_import,
        _add_recover,
    ):
        add(sub)
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
