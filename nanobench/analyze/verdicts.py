"""Verdicts in English: one sentence per pair of configurations, and the equivalence verdict
in words. Numbers are written through analyze/format.py, as in the tables."""

from __future__ import annotations

from nanobench.analyze.format import fmt_ratio, fmt_time
from nanobench.analyze.noise import noisy_note


def verdict(p) -> str:
    """One sentence per pair, in the spirit of hyperfine's summary. `p` is the PairComparison
    that analyze/pairs.py is building (read by its fields; pairs.py imports this module, so
    this one does not import it back)."""
    o, b = p.other.label, p.base.label
    parts = []
    if p.speedup:
        s = p.speedup
        if s.ratio >= 1:
            way, lo, hi = f"{fmt_ratio(s.ratio)} faster", s.low, s.high
        else:  # say "slower" with the range inverted, so the numbers read the same way
            way, lo, hi = f"{fmt_ratio(1 / s.ratio)} slower", 1 / s.high, 1 / s.low
        parts.append(f"{o} ran {way} per iteration than {b} (quartile range {lo:.2f}-{hi:.2f}x)")
    reached = _target_words(p, o, b)
    if reached:
        parts.append(reached)
    if p.equal_iter:
        e = p.equal_iter
        parts.append(
            f"at equal iterations ({int(e.at)}) their val loss differs by {e.diff:+.4f} ({o} minus {b}){_on(e)}"
            + _seed_sets(e, b, o)
        )
    if p.equal_time:
        e = p.equal_time
        parts.append(f"at equal train time ({fmt_time(e.at)}) by {e.diff:+.4f}{_on(e)}")
    noisy = noisy_note(p.base.runs + p.other.runs)
    if noisy and (
        p.speedup or any(t.train_time_ratio is not None for t in p.targets) or p.equal_time
    ):
        parts.append(
            f"the timings above rest on noisy runs, so the speedup and times are not to be trusted: {noisy}"
        )
    return "; ".join(parts) + "."


def _target_words(p, o: str, b: str) -> str:
    """The hardest target both reached and how much sooner; else the hardest one side reached
    and the other never did; else the hardest, which neither reached; '' without targets."""
    both = [t for t in p.targets if t.train_time_ratio is not None]
    if both:
        t = min(both, key=lambda t: t.target)  # the hardest target both reached
        r = t.train_time_ratio
        way = f"{fmt_ratio(r)} sooner" if r >= 1 else f"{fmt_ratio(1 / r)} later"
        return (
            f"{o} reached val {t.target:.2f} {way} than {b} (train time {fmt_time(t.other.train_time_s)} "
            f"vs {fmt_time(t.base.train_time_s)})"
        )
    one = [t for t in p.targets if (t.base is None) != (t.other is None)]
    if one:
        t = min(one, key=lambda t: t.target)
        who, hit, never, never_cs = (o, t.other, b, p.base) if t.other else (b, t.base, o, p.other)
        return (
            f"{who} reached val {t.target:.2f} after {fmt_time(hit.train_time_s)} of training; "
            f"{never} never did (best {never_cs.best_val_loss:.4f})"
        )
    if p.targets:
        return f"neither reached val {min(t.target for t in p.targets):.2f}"
    return ""


def _on(e) -> str:
    """' on the 1 shared seed, 1337' where the seed sets differ, '' where they are the same."""
    return f" {e.split.on()}" if e.split is not None and e.split.differ else ""


def _seed_sets(e, base: str, other: str) -> str:
    return f"; {e.split.words(base, other)}" if e.split is not None and e.split.differ else ""


def diverged_words(point, base: str, other: str) -> str:
    """'seed 1338 diverged in cpu bf16 at iteration 750 (not in cpu fp32)', or ''."""
    return "; ".join(
        f"seed {s} diverged in {other if side == 'b' else base} at iteration {at} "
        f"(not in {base if side == 'b' else other})"
        for s, side, at in point.diverged
    )


def design_words(point) -> str:
    """'paired over 3 seeds' / 'paired over 3 seeds, 1 seed of one configuration only left out' /
    'unpaired (Welch), 3 vs 2 seeds'. A seed that diverged on one side is named apart (diverged_words)."""
    if point.design == "paired":
        left = point.n_unpaired
        return f"paired over {point.n_pairs} seeds" + (
            f", {left} seed{'s' if left != 1 else ''} of one configuration only left out"
            if left
            else ""
        )
    return f"unpaired (Welch), {point.n_b} vs {point.n_a} seeds"


def equivalence_sentence(eq: dict, base: str, other: str, imported: str = "") -> str:
    """The equivalence verdict in words: where the two leave the seed noise, and at the end,
    with the interval that decides it and what each correction covers.
    imported: the format of an imported side's log ("" when both are nanobench's runs)."""
    final = eq["final"]
    if final is None:
        if eq.get("too_short"):
            return (
                f"Equivalence of {other} and {base}: too short to judge: the only evaluation both have is "
                f"iteration 0, the initial weights, before any training."
            )
        return f"{other} and {base} share no evaluation iteration."
    short = _cut_short(eq, final, base, other)
    gone = diverged_words(final, base, other)
    if final.ci95 is None:
        return _without_interval(final, base, other, imported, gone, short)
    points = eq["points"]
    counts = {
        v: sum(1 for p in points if p.verdict == v)
        for v in ("equivalent", "different", "diverged", "undecided")
    }
    looks = sum(1 for p in points if p.p_holm is not None)
    leaves = eq["first_iter_beyond_noise"]
    where = (
        f"they leave the seed noise at iteration {leaves} and stay out of it"
        if leaves is not None
        else "they never leave the seed noise for good"
        if counts["different"]
        else "they never leave the seed noise"
    )
    what = "mean per-seed difference" if final.design == "paired" else "difference of means"
    lo90, hi90 = final.ci90
    lo95, hi95 = final.ci95
    diverged = (
        f", {counts['diverged']} with a seed diverged on one side" if counts["diverged"] else ""
    )
    sets = (
        f" The seed sets differ ({final.split.words(base, other)})."
        if final.split is not None and final.split.differ and final.design == "unpaired"
        else ""
    )
    return (
        f"Equivalence of {other} and {base} ({design_words(final)}, margin {eq['margin']:g}): "
        f"{final.verdict} at iteration {final.iter} ({what} {final.diff:+.4f}, 90% CI {lo90:+.4f} to "
        f"{hi90:+.4f}, the interval TOST decides by; 95% CI {lo95:+.4f} to {hi95:+.4f})"
        + (f"; {gone}" if gone else "")
        + f"; {where}; of {len(points)} evaluations after iteration 0, {counts['equivalent']} equivalent, "
        f"{counts['different']} different{diverged}, {counts['undecided']} undecided{short}. "
        f"Equivalence needs no correction for the many evaluations (an intersection-union test: every one "
        f'must pass); the tests of a zero difference behind "different" are Holm-corrected over {looks}.'
        + sets
    )


def _without_interval(final, base: str, other: str, imported: str, gone: str, short: str) -> str:
    """The verdict where the final evaluation has no interval: a seed diverged on one side, or
    a side has a single seed (with how to get more: --seeds, or logs of an imported side)."""
    on = f", difference {final.diff:+.4f} {final.split.on()}" if final.split else ""
    if gone:
        return (
            f"Equivalence of {other} and {base}: diverged at iteration {final.iter}: {gone}; never "
            f"equivalent from there{on}{short}."
        )
    if not imported:
        return (
            f"Equivalence of {other} and {base}: undecided, {final.n_b} and {final.n_a} seed(s){on}; "
            f"run 2 or more seeds of each (--seeds) to compare the difference with the seed-to-seed "
            f"spread{short}."
        )
    fixed = " (nanoGPT's train.py fixes its seed at 1337)" if imported == "nanogpt" else ""
    return (
        f"Equivalence of {other} and {base}: undecided, {final.n_b} and {final.n_a} seed(s){on}; 2 or more "
        f"seeds of each compare the difference with the seed-to-seed spread: --seeds for nanobench's runs, "
        f"logs of runs with other seeds for the imported {imported} side{fixed}{short}."
    )


def _cut_short(eq: dict, final, base: str, other: str) -> str:
    """'; judged up to iteration 10 only: cpu fp32's evaluations end there, cpu bf16's at 30', or ''."""
    la, lb = eq.get("last_a"), eq.get("last_b")
    if la is None or lb is None or la == lb:
        return ""
    short, longer = (base, other) if la < lb else (other, base)
    return (
        f"; judged up to iteration {final.iter} only: {short}'s evaluations end at {min(la, lb)}, "
        f"{longer}'s at {max(la, lb)}"
    )
