"""The published report: a folder with `index.html` and the one copy of plotly.js it loads
(`plotly.min.js`, present/plotlyjs.py), and with `stills` a PNG of every figure (`figures/`)
for where no script runs; readable from file:// offline: no external URL, no request beyond
the folder.

The page reads top down: a table of contents; the summary (per pair one line: the verdict
and the interval that decides it, the speed); "is each run normal?" as one table; the
comparison tables; the interactive figures (plotly: hover, zoom, legend toggles, log/linear
x); the environment, folded; samples; methodology. Every
section has an anchor.

Every string that comes from a result file (names, host names, sample text, paths) goes
through `html.escape`: a result file is data, never markup. Strings inside a figure are
escaped by present/plots.py and embedded by plotly, which escapes `<` in its JSON.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from pathlib import Path

from nanobench import files
from nanobench.analyze.compare import Comparison, Group
from nanobench.analyze.format import fmt_ratio
from nanobench.analyze.noise import TIMING_RULE, noisy_note
from nanobench.analyze.runs import RunStats
from nanobench.analyze.verdicts import equivalence_sentence
from nanobench.errors import InputError
from nanobench.present import plotlyjs, plots
from nanobench.present.explain import explanation_html
from nanobench.present.tables import (
    TableText,
    axes_differ,
    energy_note,
    equivalence_table,
    matrix_table,
    runs_table,
    speed_table,
    targets_table,
)
from nanobench.store.meta import RunMeta

FIGURES_DIR = "figures"  # the stills, beside index.html
CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
  margin: 2em auto; max-width: 1200px; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h2, h3, h4, figure { scroll-margin-top: .5em; }
a.anchor { color: #bbb; text-decoration: none; margin-left: .3em; font-weight: normal; } a.anchor:hover { color: #58c; }
nav.toc { background: #f7f7f7; border: 1px solid #e3e3e3; padding: .4em 1em; margin: 1em 0; font-size: 13px; }
nav.toc ol { margin: .2em 0; padding-left: 1.4em; } nav.toc li { margin: .1em 0; }
nav.toc ol ol ol { display: flex; flex-wrap: wrap; gap: 0 1.4em; list-style: none; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
th, td { padding: .25em .6em; border-bottom: 1px solid #e3e3e3; vertical-align: top; }
th { text-align: left; background: #f4f4f4; } td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
td.diff { background: #fff0c2; font-weight: 600; }
ul.summary { list-style: none; padding: 0; margin: .4em 0 1em; }
ul.summary li { padding: .35em .8em; margin: .25em 0; border-left: 4px solid #999; background: #f6f6f6; }
ul.summary li.equivalent { border-color: #4a4; background: #eef6ee; }
ul.summary li.different { border-color: #c44; background: #fbeeee; }
ul.summary li.undecided { border-color: #d90; background: #fff6e0; }
ul.summary li.diverged { border-color: #c44; background: #fbeeee; }
.word { font-weight: 700; text-transform: uppercase; font-size: .85em; letter-spacing: .03em; }
.verdict { background: #eef6ee; border-left: 4px solid #4a4; padding: .5em 1em; margin: .5em 0; }
.warning { background: #fff6e0; border-left: 4px solid #d90; padding: .4em 1em; margin: .4em 0; }
.note { background: #eef3fb; border-left: 4px solid #58c; padding: .4em 1em; margin: .4em 0; }
table.normal tr.outside td { background: #fbeeee; } table.normal tr.outside td.word { color: #a22; }
figure.plot { margin: .6em 0 1.6em; } figure.plot figcaption { font-size: 12px; color: #555; }
figure.plot noscript img { max-width: 100%; }
.samples { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1em; }
.samples figure { margin: 0; }
.samples pre { white-space: pre-wrap; background: #f7f7f7; padding: .6em; font-size: 12px; border: 1px solid #e3e3e3; }
.scroll { overflow-x: auto; } details { margin: .6em 0 1.2em; } summary { cursor: pointer; color: #345; }
code { background: #f4f4f4; padding: 0 .2em; }
"""

METHODOLOGY = """
<h3>What each number means</h3>
<ul>
<li><b>ms/iter</b>: the median (p50) and 90th percentile of <code>step_time_s</code>, forward + backward +
optimizer step, device-synchronised (CUDA events on a GPU). Evaluation and logging are not in it. The first
iterations (<code>warmup</code> rows: allocator growth, compilation) are excluded.</li>
<li><b>Speedup</b>: the ratio of median step times, baseline over the other configuration (&gt; 1: the other
is faster). Its range is [baseline Q1 / other Q3, baseline Q3 / other Q1]: the ratio when both
configurations' steps move within their interquartile ranges. Seeds of one configuration are pooled.</li>
<li><b>Time to target</b>: the first evaluation at which val loss &le; the scenario's target, in iterations,
in train time (sum of step times before that evaluation) and in wall time (everything since the run
started, evaluation included). With several seeds it is their mean, shown only when every seed got there.
Ratios are baseline over other: 4.8x means the other configuration got there 4.8 times sooner.</li>
<li><b>Val loss at equal iteration</b>: both configurations at the last evaluation iteration that every run has.</li>
<li><b>Val loss at equal train time</b>: both at the train time of the shorter run's last evaluation, each
run interpolated linearly between its evaluations (no extrapolation), then averaged over seeds. <b>At equal
tokens</b> and <b>at equal FLOPs</b> the same, on the axes of training tokens seen (iteration x tokens per
iteration) and model FLOPs spent (iteration x FLOPs per iteration); they are shown when the recipes compared
differ in tokens or FLOPs per iteration (other batch, context or model), else they are the equal iteration.</li>
<li><b>Loss figures</b>: lines are the mini-batch train loss smoothed with an exponential moving average
(beta 0.9) with bias correction, so the first points are not pulled towards zero, each run drawn from at most
600 points; open circles are evaluations (val loss) on a fixed set of batches that is the same for every run of
the scenario; with several seeds a thicker line is their mean val loss and the shaded area its band; dotted
horizontal lines are the scenario's target losses. The <b>difference</b> figure draws each configuration's val
loss minus the baseline's at every evaluation, shaded with the interval its verdict rests on, against zero and
the equivalence margin. Hover a point for its run, seed, device and value; drag to zoom (double-click to
reset); click a legend entry to hide a configuration, double-click to show it alone; the buttons switch x
between linear and log; the camera button saves the figure as a PNG. <code>nanobench report --stills</code>
also writes a PNG of every figure beside the page (<code>figures/</code>) for where no script runs (an e-mail,
a PDF); the page links each and shows it to a browser without scripts.</li>
<li><b>tokens/s</b>: tokens per iteration / median step time. <b>MFU</b>: model FLOPs per iteration (nanoGPT's
6N + 12LHQT formula) / step time / the device's datasheet peak for the dtype; blank when no peak is known.
<b>Peak memory</b>: CPU peak RSS of the process, CUDA peak allocated by torch's allocator: not the same
quantity. <b>Energy</b>: NVML or RAPL counters where readable; <b>energy to target</b> is the counter's joules
from the run's start to the wall time of the evaluation that first reached the target (evaluations included,
like wall time), the mean over seeds.</li>
</ul>
<h3>Beyond seed noise: the equivalence verdict</h3>
<p>With several seeds per configuration (<code>--seeds</code>), each evaluation after iteration 0 (the initial
weights are not judged) compares the difference in val loss (other minus baseline) with the seed-to-seed noise.
Runs with the same seed start from the same weights and see the same batches, so where two configurations share
seeds the test is <b>paired</b>: the mean of the per-seed differences, with a t interval from their spread (seeds
that ran in one configuration only are left out of it, and said so). With fewer than two shared seeds it is
<b>unpaired</b>: a Welch t interval of the difference of the seed means. Every gap in the page (at equal
iterations, at equal train time, the explanation) is taken on the seeds both configurations ran; what the seeds of
one side only move its mean by is said apart, and without any shared seed the gap is a difference of means that
cannot be told from the choice of seeds unless it exceeds their spread. Two one-sided tests (TOST, alpha 0.05)
with a margin (0.02 nats unless <code>--margin</code> says otherwise) decide <b>equivalent</b>: the <b>90%</b>
interval, shown beside the verdict, lies inside &plusmn;margin. Equivalence at every evaluation is an
intersection-union test and needs no correction for the many evaluations. The t test of a zero difference decides
<b>different</b> when its p-value, <b>Holm-adjusted over all the evaluations of the pair</b>, is below 0.05; Holm
covers these tests only. A seed that diverged (NaN or inf) in one configuration and not the other makes every
later evaluation <b>diverged</b>, never equivalent. Otherwise <b>undecided</b>, and always with fewer than 2 seeds
(pairs) to measure a spread with. A configuration "leaves the noise" at the first evaluation from which every
Holm-adjusted p is below 0.05: it leaves and stays out. The intervals are Student t intervals (exact for normal
seed-to-seed variation at any number of seeds); the 95% ones are per evaluation, unadjusted. In the loss plots,
configurations with several seeds are drawn as the mean with the seeds' range (min to max) as the band, at every
number of seeds.</p>
<h3>Explaining the gap</h3>
<p>Between two configurations (<code>nanobench explain A B</code>, and each pair of the report), nanobench lists
every factor that differs (device, precision, compile, threads, torch version, iterations and schedule, batch
and context, model shape, the rest of the recipe) and builds a ladder of configurations from A to B changing one
factor per rung. Each rung's part of a quantity (final val loss, ms/iter, train time to a common target, train
time of the whole run) is its configuration's value minus the previous one's, on the seeds the two share, so
the parts (with a row for which seeds ran where the seed sets differ) sum exactly to the gap; the band of a part
is a paired 95% t interval where two or more seeds pair, else a Welch 95% interval, and each band says how it
was made. Time parts of the same runs cut at two lengths are marked: they are drift within those runs. The split depends
on the order of the rungs. A rung measured nowhere is either missing (its command is named) or
<i>projected</i> from a short truncated run and the loss curve of the same recipe on another device, and says
so. Where the ladder is incomplete, the older split at the last common evaluation is shown: the difference
there is hardware and precision, the rest the iterations one ran beyond the other.</p>
<h3>What cannot be identical across devices</h3>
<ul>
<li>Initial weights, training batches and evaluation batches are identical on every device (drawn on the CPU
from the seed). Dropout masks are drawn by each device's own generator, so they differ across devices when
dropout &gt; 0.</li>
<li>Kernels, their reduction order and fused implementations differ between devices, libraries and thread
counts; losses agree to a few decimals at first and drift apart over thousands of steps.</li>
<li>Lower precision (bf16, fp16, tf32) changes the numbers themselves: a loss difference between dtypes
is precision, not hardware. Compare one dtype across devices to see the hardware alone.</li>
<li>Timings depend on everything else the machine was doing; the environment table records what is known.</li>
</ul>
<h3>Comparability</h3>
<p>Runs are grouped by scenario name and dataset sha256 and never compared across groups. Within a group, a
configuration is (device type and name, dtype, compile, recipe). The recipe is the scenario as run, after
<code>--set</code> overrides: its data, model, train and eval keys except the seed and <code>train.max_iters</code>
(how far a run goes; the learning-rate schedule does not depend on it, so <code>--max-iters</code> truncates the
same recipe). Runs whose recipes differ are different experiments: never averaged, banded, paired or gated
together; their labels name what differs (<i>cpu fp32 &middot; learning_rate=3e-4</i>) against the recipe of the
runs made without overrides. The baseline follows a stated rule (cpu fp32 of that recipe first, never a
configuration with a noisy run where a quiet one is there, then the slowest) unless <code>--reference</code> names it.
Differences in dtype, compile, thread count and torch version are flagged as confounds.</p>
"""

ENV_FIELDS = [  # (row name, its value in a run's metadata; None is shown as "-")
    ("run", lambda m: m.run_id),
    ("scenario", lambda m: m.scenario_name),
    ("status", lambda m: m.status),
    ("device", lambda m: m.device.text),
    ("device name", lambda m: m.device.name),
    ("dtype", lambda m: m.options.settings.dtype),
    ("compile", lambda m: m.options.settings.compile),
    ("seed", lambda m: m.options.seed),
    ("overrides", lambda m: ", ".join(m.options.overrides) or "none"),
    ("torch threads", lambda m: m.environment.torch_num_threads),
    ("CPU", lambda m: m.environment.cpu_model),
    ("CPU cores", lambda m: m.environment.cpu_physical_cores),
    ("GPU", lambda m: m.environment.gpu_name),
    ("driver", lambda m: m.environment.gpu_driver),
    ("CUDA", lambda m: m.environment.cuda_runtime),
    ("torch", lambda m: m.environment.torch),
    ("Python", lambda m: m.environment.python),
    ("matmul precision", lambda m: m.environment.float32_matmul_precision),
    ("host", lambda m: m.environment.hostname),
    ("OS", lambda m: m.environment.os),
    ("git commit", lambda m: m.environment.git_commit),
    ("git dirty", lambda m: m.environment.git_dirty),
    ("started", lambda m: m.started_at),
]
# rows that differ between runs by nature, not as a confound: never highlighted
NOT_HIGHLIGHTED = {"run", "seed", "started", "status"}

e = html.escape  # every string from a result file passes through this


def table_html(table: TableText, cls: str = "") -> str:
    head = "".join(
        f'<th class="{"r" if j == "right" else ""}">{e(name)}</th>' for name, j in table.columns
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"r" if j == "right" else ""}">{e(cell)}</td>'
            for cell, (_, j) in zip(row, table.columns)
        )
        + "</tr>"
        for row in table.rows
    )
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _env_table(runs: list[RunStats], fields, cls: str) -> str:
    """One column per run; a cell that differs from the first run's is highlighted."""
    head = "<th>field</th>" + "".join(f"<th>{e(_short_name(r.info))}</th>" for r in runs)
    body = []
    for name, values in fields:
        cells = []
        for i, v in enumerate(values):
            diff = i > 0 and v != values[0] and name not in NOT_HIGHLIGHTED
            cells.append(f'<td class="{"diff" if diff else ""}">{e(v)}</td>')
        body.append(f"<tr><th>{e(name)}</th>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


# differ by nature and are long (ids, times): in the full table only
NOT_IN_SUMMARY = {"run", "started", "seed"}


def environment_html(runs: list[RunStats]) -> str:
    """The fields that differ between runs (what could explain a difference), then every field
    of every run folded under <details>: a page of many runs stays within its width."""
    fields = [
        (name, ["-" if read(r.info) is None else str(read(r.info)) for r in runs])
        for name, read in ENV_FIELDS
    ]
    differ = [
        (name, values)
        for name, values in fields
        if len(set(values)) > 1 and name not in NOT_IN_SUMMARY
    ]
    summary = (
        _env_table(runs, differ, "env env-diff")
        if differ
        else "<p>Every recorded field below is the same in all runs (besides run id, seed and start time).</p>"
    )
    return (
        f"<p>Fields that differ between runs; highlighted cells differ from the first run's.</p>{summary}"
        f"<details><summary>Every field of every run ({len(fields)} fields, {len(runs)} runs)</summary>"
        f"{_env_table(runs, fields, 'env env-all')}</details>"
    )


def _short_name(m: RunMeta) -> str:
    known = lambda v: "?" if v is None else v  # noqa: E731
    return f"{known(m.device.type)} {m.options.settings.dtype} s{known(m.options.seed)}"


def _series(group: Group):
    series, names = [], []
    for cs in group.configs:
        for r in cs.runs:
            series.append((cs.label, r))
            names.append(f"{cs.label} s{r.seed}")
    return series, names


def noise_html(runs: list[RunStats]) -> str:
    """Why a run's timings are marked noisy, and what the timing and outlier columns mean."""
    noisy = [
        f"<li><b>{e(r.run_id)}</b>: {e('; '.join(r.noise.reasons) or 'noisy')}</li>"
        for r in runs
        if r.noise.verdict == "noisy"
    ]
    return (
        (
            f'<p class="warning">Noisy runs: their timings (ms/iter, speedup, time to target, timing gates) '
            f"are not to be trusted.</p><ul>{''.join(noisy)}</ul>"
            if noisy
            else ""
        )
        + f"<p>noise: the verdict the run recorded (quiet or noisy; - when not sampled; "
        f"docs/results.md); outliers: {e(TIMING_RULE)}.</p>"
    )


def deciding_interval(point) -> tuple[float, float, str] | None:
    """The interval a pair's verdict at one evaluation rests on, as analyze/equivalence
    recorded it (never recomputed here): TOST at alpha 0.05 decides "equivalent" by the 90%
    interval. None where one side has a single seed (no spread to build one from)."""
    return None if point.ci90 is None else (point.ci90[0], point.ci90[1], "90% CI")


def _speed_words(p) -> list[str]:
    """The pair's speed in a few words: per iteration, and to the hardest target both reached."""
    out = []
    if p.speedup:
        r = p.speedup.ratio
        out.append(
            f"{fmt_ratio(r)} faster per iteration"
            if r >= 1
            else f"{fmt_ratio(1 / r)} slower per iteration"
        )
    both = [t for t in p.targets if t.train_time_ratio is not None]
    if both:
        t = min(both, key=lambda t: t.target)
        r = t.train_time_ratio
        way = f"{fmt_ratio(r)} sooner" if r >= 1 else f"{fmt_ratio(1 / r)} later"
        out.append(f"reached val {t.target:.2f} {way}")
    if out and noisy_note(p.base.runs + p.other.runs):
        out.append("timings from noisy runs")
    return out


def summary_line(p) -> str:
    """One line per pair: the verdict at the last common evaluation with the interval that
    decides it and the margin, then the speed. The full sentence is in the comparison below."""
    eq, final = p.equivalence, (p.equivalence or {}).get("final")
    who = f"<b>{e(p.other.label)}</b> vs {e(p.base.label)}: "
    if final is None or eq.get("too_short"):  # too_short: only the initial weights in common
        why = (
            "no evaluation in common" if final is None else "only iteration 0 in common: too short"
        )
        speed = "; ".join(map(e, _speed_words(p)))
        return f'<li class="none">{who}{why} to judge the loss by. {speed}</li>'
    interval = deciding_interval(final)
    design = (
        f"paired, {final.n_pairs} pairs"
        if final.design == "paired"
        else f"unpaired, {final.n_b} vs {final.n_a} seeds"
    )
    if interval is None:
        judged = (
            f"val loss {final.diff:+.4f} at iteration {final.iter}; "
            f"{final.n_b} and {final.n_a} seed(s): no spread to judge it by (--seeds)"
        )
    else:
        lo, hi, name = interval
        judged = (
            f"val loss {final.diff:+.4f} at iteration {final.iter} ({design}, {name} "
            f"{lo:+.4f} to {hi:+.4f}, margin &plusmn;{eq['margin']:g})"
        )
    speed = "".join(f" &middot; {e(w)}" for w in _speed_words(p))
    return (
        f'<li class="{e(final.verdict)}">{who}<span class="word">{e(final.verdict)}</span>: '
        f"{judged}{speed}</li>"
    )


def normal_html(checks) -> str:
    """ "Is each run normal?" as one table: a row per run, the first reference check outside its
    band and how far outside, the band's source in the cell's title."""
    rows = []
    for ch in checks:
        if not ch.checked:
            verdict, where, distance, cls = (
                "no check",
                "no evaluation at a reference iteration",
                "",
                "",
            )
        elif ch.first_outside is None:
            its = sorted({it for it, _, _ in ch.checked})
            verdict = "normal"
            where = f"all {len(ch.checked)} inside (iterations {its[0]}-{its[-1]})"
            distance, cls = "", ""
        else:
            it, val, band = ch.first_outside
            above = val > band.high
            verdict, cls = "not normal", "outside"
            where = f"iteration {it}: val {val:.4f}, band {band.low:.4f}-{band.high:.4f} ({band.source})"
            distance = f"{val - band.high:+.4f} above" if above else f"{val - band.low:+.4f} below"
        rows.append(
            f'<tr class="{cls}"><td>{e(ch.run_id)}</td><td class="word">{e(verdict)}</td>'
            f'<td>{e(where)}</td><td class="r">{e(distance)}</td></tr>'
        )
    return (
        '<div class="scroll"><table class="normal"><thead><tr><th>run</th><th>verdict</th>'
        '<th>first check outside the reference band</th><th class="r">distance</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _heading(level: int, anchor: str, text: str) -> str:
    """A heading with its anchor and a link to it (the ¶ a reader copies)."""
    link = f'<a class="anchor" href="#{anchor}" aria-label="link to this section">&para;</a>'
    return f'<h{level} id="{anchor}">{text}{link}</h{level}>'


def group_html(group: Group, gid: str, explained: set = frozenset()) -> str:
    """The comparison tables of one group, and each pair in words."""
    title = f"{group.scenario} on {group.dataset} (sha256 {group.dataset_sha256[:12]})"
    parts = [
        _heading(3, f"{gid}-comparison", e(title)),
        f"<p>{len(group.runs)} runs; baseline: <b>{e(group.baseline.label)}</b> "
        f"({e(group.baseline_why)})</p>",
    ]
    matrix = matrix_table(group)
    if matrix is not None:
        parts += ["<h4>Device &times; dtype</h4>", table_html(matrix, "matrix")]
    parts += ["<h4>Runs</h4>", table_html(runs_table(group)), noise_html(group.runs)]
    if group.pairs:
        parts += [
            "<h4>Speed and loss at equal iteration and equal train time</h4>",
            table_html(speed_table(group)),
        ]
    tt = targets_table(group)
    if tt is not None:
        parts += ["<h4>Time to target</h4>", table_html(tt)]
        parts += [f"<p>{e(energy_note(group))}</p>"] if energy_note(group) else []
    for k, p in enumerate(group.pairs, 1):
        parts += [
            _heading(
                4, f"{gid}-pair{k}", f"Beyond seed noise? {e(p.other.label)} vs {e(p.base.label)}"
            ),
            f'<p class="verdict">{e(p.verdict)}</p>',
            f"<p>{e(equivalence_sentence(p.equivalence, p.base.label, p.other.label, p.imported))}</p>",
            table_html(equivalence_table(p)),
        ]
        if (group.key, p.other.label) in explained:  # the ladder replaces the same-scenario split
            parts.append(
                '<p>The gap is explained rung by rung in <a href="#explain">Explaining the gap</a>.</p>'
            )
        else:
            parts += [
                f"<h4>Explaining the gap: {e(p.other.label)} vs {e(p.base.label)}</h4>",
                "<ul>" + "".join(f"<li>{e(t)}</li>" for t in p.explanation["sentences"]) + "</ul>",
            ]
    return "".join(parts)


@dataclass
class FigureItem:
    slug: str  # the anchor and the still's file name (figures/<slug>.png)
    caption: str
    figure: object  # a plotly Figure


def group_figures(group: Group, gid: str) -> tuple[list[FigureItem], list[str]]:
    """The figures of one group, in the page's order, and notes on those left out."""
    series, names = _series(group)
    targets, shared = group.targets, {}  # shared: each run's train EMA, computed once
    items = [
        (
            "loss-iteration",
            "Loss against iterations",
            plots.loss_vs_iteration(series, targets, shared=shared),
        ),
        (
            "loss-train-time",
            "Loss against train time",
            plots.loss_vs_train_time(series, targets, shared=shared),
        ),
        (
            "loss-wall-time",
            "Loss against wall time",
            plots.loss_vs_wall_time(series, targets, shared=shared),
        ),
    ]
    notes = []
    if axes_differ(group):
        items.append(
            (
                "loss-tokens",
                "Loss against training tokens",
                plots.loss_vs_tokens(series, targets, shared=shared),
            )
        )
        if any(r.flops_per_iter for r in group.runs):  # older and hand-made files record no FLOPs
            items.append(
                (
                    "loss-flops",
                    "Loss against model FLOPs",
                    plots.loss_vs_flops(series, targets, shared=shared),
                )
            )
    else:
        notes.append(
            "Every run here has the same tokens and model FLOPs per iteration, so loss against "
            "tokens or FLOPs is the loss against iterations above with its axis scaled: not drawn."
        )
    if group.pairs:
        items.append(
            (
                "difference",
                "Val loss minus the baseline's, with the interval of each verdict",
                plots.loss_difference(group.pairs, deciding_interval),
            )
        )
    items += [
        ("step-time-over-run", "ms per iteration over the run", plots.step_time_over_run(series)),
        (
            "step-time-per-run",
            "ms per iteration, per run",
            plots.step_time_distribution(series, names),
        ),
        ("memory", "Memory over the run", plots.memory_over_time(series)),
    ]
    return [FigureItem(f"{gid}-{slug}", cap, fig) for slug, cap, fig in items], notes


def figure_html(item: FigureItem, stills: bool) -> str:
    """The interactive figure and its caption; with stills, a link to the figure's PNG and the
    PNG itself for a reader without scripts (<noscript>)."""
    still = f"{FIGURES_DIR}/{item.slug}.png"
    link = f' &middot; <a href="{still}">still image (PNG)</a>' if stills else ""
    fallback = (
        f'<img alt="{e(item.caption)}" src="{still}">'
        if stills
        else "<p>(this figure needs scripts; <code>nanobench report --stills</code> writes it as a PNG)</p>"
    )
    return (
        f'<figure class="plot" id="{item.slug}">'
        f"{plotlyjs.figure_div(item.figure, f'plot-{item.slug}')}"
        f"<noscript>{fallback}</noscript>"
        f"<figcaption>{e(item.caption)}{link}"
        f'<a class="anchor" href="#{item.slug}" aria-label="link to this figure">&para;</a></figcaption></figure>'
    )


def samples_html(runs: list[RunStats]) -> str:
    cells = []
    for r in runs:
        text = (
            r.info.sample if r.info.sample is not None else "(no sample: the run did not complete)"
        )
        cells.append(
            f"<figure><figcaption>{e(_short_name(r.info))} <small>{e(r.info.run_id)}</small></figcaption>"
            f'<pre class="sample">{e(text)}</pre></figure>'
        )
    return f'<div class="samples">{"".join(cells)}</div>'


def explain_html(explanations) -> str:
    """The report's "Explaining the gap" section: one ladder per explanation (present/explain.py)."""
    if not explanations:
        return ""
    parts = [
        '<h2 id="explain">Explaining the gap</h2>',
        "<p>Each gap is split along a ladder of configurations from A to B that changes one factor per rung; each "
        "rung's part is its configuration minus the one before, so the parts sum to the gap. The split depends on "
        "the order of the rungs; another order is shown where its runs exist. Projected figures say so.</p>",
    ]
    for _, x in explanations:
        parts += [
            f"<h3>{e(x.b.point.label())} vs {e(x.a.point.label())}</h3>",
            explanation_html(x, table_html, e),
        ]
    return "".join(parts)


@dataclass
class Page:
    html: str
    figures: list[FigureItem] = field(default_factory=list)  # in page order


def _toc(entries) -> str:
    """[(anchor, title, [its subsections, the same shape])] -> the table of contents."""
    if not entries:
        return ""
    items = "".join(
        f'<li><a href="#{anchor}">{text}</a>{_toc(subs)}</li>' for anchor, text, subs in entries
    )
    return f"<ol>{items}</ol>"


def group_summary(g: Group) -> list[str]:
    """A group's paragraphs in the Summary: a line per pair (or why there is none), the device
    speedups of `run --best` runs, the group's notes and its confounds."""
    if g.pairs:
        out = ['<ul class="summary">' + "".join(map(summary_line, g.pairs)) + "</ul>"]
    else:
        out = ["<p>One configuration only: nothing to compare against; its numbers are below.</p>"]
    out += [f'<p class="verdict">{e(d.sentence())}</p>' for d in g.device_speedups]
    out += [f'<p class="note">note: {e(n)}</p>' for n in g.notes]
    return out + [f'<p class="warning">confound: {e(c)}</p>' for c in g.confounds]


def render_page(
    comparison: Comparison, title: str = "nanobench report", explanations=(), stills: bool = False
) -> Page:
    """The page and its figures (plotly figures, drawn in the page by plotly.js; with
    `stills` the page links a PNG of each, which write_report draws)."""
    ordered = comparison.runs
    explained = {
        key
        for key, x in explanations
        if key is not None and x.ladder.attribution["val_loss"].complete
    }
    summary, tables, figures, items = [], [], [], []
    toc_summary, toc_tables, toc_figures = [], [], []
    for w in comparison.warnings:
        summary.append(f'<p class="warning">warning: {e(w)}</p>')
    for line in comparison.skipped:
        summary.append(f'<p class="warning">skipped: {e(line)}</p>')
    for k, g in enumerate(comparison.groups, 1):
        gid = f"g{k}"
        name = e(f"{g.scenario} ({len(g.runs)} runs, baseline {g.baseline.label})")
        summary.append(_heading(3, f"{gid}-summary", name))
        toc_summary.append((f"{gid}-summary", name, []))
        summary += group_summary(g)
        tables.append(group_html(g, gid, explained))
        toc_tables.append((f"{gid}-comparison", e(g.scenario), []))
        group_items, notes = group_figures(g, gid)
        items += group_items
        figures.append(_heading(3, f"{gid}-figures", e(g.scenario)))
        figures += [f'<p class="note">{e(n)}</p>' for n in notes]
        figures += [figure_html(it, stills) for it in group_items]
        toc_figures.append(
            (f"{gid}-figures", e(g.scenario), [(it.slug, e(it.caption), []) for it in group_items])
        )
    toc = [("summary", "Summary", toc_summary)]
    normal = ""
    if comparison.references:
        toc.append(("normal", "Is each run normal?", []))
        normal = (
            _heading(2, "normal", "Is each run normal?")
            + "<p>Each run's val loss against its scenario's reference bands (nanoGPT's published "
            "figures and the committed seed runs), at every iteration that has one.</p>"
            + normal_html(comparison.references)
        )
    toc.append(("comparison", "Comparison", toc_tables))
    if explanations:
        toc.append(("explain", "Explaining the gap", []))
    toc += [
        ("figures", "Figures", toc_figures),
        ("environment", "Environment", []),
        ("samples", "Text samples", []),
        ("methodology", "Methodology", []),
    ]
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    script = plotlyjs.SCRIPT_NAME
    plural = "s" if len(comparison.groups) != 1 else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{CSS}</style>
<script src="{script}"></script>
</head><body>
<h1>{e(title)}</h1>
<p>{len(ordered)} runs in {len(comparison.groups)} group{plural}; generated {generated} by nanobench.
The figures are drawn by <code>{script}</code> beside this page.</p>
<nav class="toc" aria-label="contents"><b>Contents</b>{_toc(toc)}</nav>
{_heading(2, "summary", "Summary")}
{"".join(summary)}
{normal}
{_heading(2, "comparison", "Comparison")}
{"".join(tables)}
{explain_html(explanations)}
{_heading(2, "figures", "Figures")}
{"".join(figures)}
{_heading(2, "environment", "Environment")}
{environment_html(ordered)}
{_heading(2, "samples", "Text samples")}
<p>Generated on the CPU in fp32 from each run's final weights, with a fixed seed:
differences come from the weights alone.</p>
{samples_html(ordered)}
{_heading(2, "methodology", "Methodology")}
{METHODOLOGY}
</body></html>
"""
    return Page(page, items)


def render_html(comparison: Comparison, title: str = "nanobench report", explanations=()) -> str:
    """The page's HTML alone (its figures built, their stills not drawn)."""
    return render_page(comparison, title, explanations).html


def _write(path: Path, content, out: Path) -> None:
    try:
        files.write_atomic(path, content, inside=out)
    except OSError as exc:
        raise InputError(
            f"-o {out}: could not write {path.name} ({files.write_cause(exc)})"
        ) from None


def write_report(
    comparison: Comparison,
    out_dir,
    title: str = "nanobench report",
    explanations=(),
    stills: bool = False,
) -> Path:
    """index.html and plotly.min.js into `out_dir`, and with `stills` figures/<figure>.png.
    Stills an earlier report left there that this one does not draw are removed: a folder
    holds one report, and a page never links a PNG of other runs."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"-o {out}: cannot create the report folder ({exc.strerror})") from None
    path = out / "index.html"
    # refuse a planted symlink before anything is written, so a refusal leaves the folder as it was
    for name in (path.name, plotlyjs.SCRIPT_NAME) + ((FIGURES_DIR,) if stills else ()):
        files.check_inside(out / name, out)
    page = render_page(comparison, title, explanations, stills)
    try:
        plotlyjs.write_script(out)
    except OSError as exc:
        raise InputError(
            f"-o {out}: could not write {plotlyjs.SCRIPT_NAME} ({files.write_cause(exc)})"
        ) from None
    folder, written = out / FIGURES_DIR, set()
    if stills:
        from nanobench.present import static  # matplotlib: imported only to draw stills

        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise InputError(f"-o {out}: cannot create {FIGURES_DIR}/ ({exc.strerror})") from None
        for item in page.figures:
            _write(folder / f"{item.slug}.png", static.png(item.figure), out)
            written.add(f"{item.slug}.png")
    # a figures/ that leads elsewhere (a planted symlink) is never cleaned: nothing outside is removed
    stale = folder.glob("g*-*.png") if folder.is_dir() and files.is_inside(folder, out) else ()
    for old in stale:
        if old.name not in written:
            old.unlink(missing_ok=True)
    _write(path, page.html, out)
    return path
