#!/usr/bin/env bash
# gpu-check: everything nanobench can only check on a CUDA machine, in one go, in 8 minutes.
#
#   make gpu-check                                   on a machine with an NVIDIA GPU
#   bash scripts/gpu-check.sh --plan-for "NVIDIA H200"   print the time plan only (no GPU needed)
#
# Python: $PY if set, else $VENV/bin/python if that venv exists, else python3 with this
# checkout on PYTHONPATH (a lent GPU machine has torch but no registry: nothing is installed).
#
# Stages, in this order: the paths no session has ever run on a GPU come first, so that a
# budget cut (the stage caps would otherwise add up to more than the budget) falls on what
# is already known to work. Each is sized before it starts from the scenario's FLOPs, this
# GPU's datasheet peak and a stated MFU (nanobench/run/estimate.py), and capped at 1.5x its
# plan or what is left of the whole budget, whichever is less:
# 1. `nanobench tune` on cuda over dtype, optimizer and SDPA backend (--dry-run: no record)
# 2. CUDA graphs: shakespeare_char_cpu in bf16, --compile --compile-mode reduce-overhead, 300 iterations
# 3. the GPU-marked tests (tests/measure/test_gpu.py)
# 4. shakespeare_char_cpu on cuda, fp32 (the default scenario: compares with a CPU run)
# 5. shakespeare_char in bf16, nanoGPT's GPU recipe (val ~1.47 at its 5000 iterations):
#    as many of them as the budget left over by the fixed stages allows on this GPU
# 6. shakespeare_char in tf32, up to TF32_ITERS iterations, in what is then left
# then a summary. The plan fits the budget: the two sized runs are truncated (--max-iters)
# where a full run would not fit. Each stage's outcome is printed and appended to
# $OUT/stages.tsv as soon as it ends, with its runs' table, so what ran stays visible when
# a later stage is cut. The whole script stops at BUDGET_S (default 480 s = 8 minutes, set-up
# included); a stage ended by its cap still writes its file (status `interrupted`).
# Results: $OUT (default results/gpu-check/), emptied first: runs never pile up.
set -u
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"  # absolute: the re-exec below runs after the cd
cd "$(dirname "$SELF")/.."
BUDGET_S="${BUDGET_S:-480}"
SUMMARY_S=15  # kept at the end for the summary
TF32_ITERS="${TF32_ITERS:-500}"
OUT="${OUT:-results/gpu-check}"
# The MFU the plan assumes for nanoGPT's GPU recipe in eager mode (docs/performance.md gives
# the expected band, 0.05-0.12; the plan takes a low figure so that caps are not too tight),
# and the least time an eager iteration of these small models takes (kernel launches).
PLAN_MFU="${PLAN_MFU:-0.06}"
FLOOR_S="${FLOOR_S:-0.004}"

if [ -n "${PY:-}" ]; then :
elif [ -x "${VENV:-.venv}/bin/python" ]; then PY="${VENV:-.venv}/bin/python"
else PY=python3; export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"; fi
if [ -z "${NANOBENCH_DATA_DIR:-}" ] && [ -d ../shared/data ]; then export NANOBENCH_DATA_DIR="$PWD/../shared/data"; fi

# plan GPU_NAME -> lines "stage<TAB>planned_s<TAB>iterations" in stage order (iterations
# empty for fixed stages, 0 for a run that does not fit), a plan for people on stderr
plan() {
    "$PY" - "$1" "$PLAN_MFU" "$FLOOR_S" "$TF32_ITERS" "$BUDGET_S" "$SUMMARY_S" <<'PYEOF'
import sys

from nanobench.measure.peaks import gpu_spec_peak
from nanobench.run.estimate import estimate
from nanobench.run.scenario import load

gpu, mfu, floor, tf32_iters = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
budget_s, summary_s = float(sys.argv[5]), float(sys.argv[6])
VOCAB = 65  # tiny Shakespeare
MIN_ITERS = 50  # a sized run shorter than this says nothing: left out instead
# (key, what people read, fixed seconds | (scenario, dtype, most iterations)). Fixed: imports
# and `nanobench env`'s calibration; ~10 lockstep candidates x 60 steps of a tiny model; one
# compile of forward and backward with graph capture, then 300 short steps; 13 short tests.
stages = [
    ("setup", "setup", 30.0),
    ("tune", "tune cuda (dtype, optimizer, sdpa)", 45.0),
    ("graphs", "cuda graphs (reduce-overhead, 300 iters)", 90.0),
    ("tests", "gpu tests", 90.0),
    ("cpu-recipe", "shakespeare_char_cpu cuda fp32", ("shakespeare_char_cpu", "fp32", None)),
    ("bf16", "shakespeare_char cuda bf16", ("shakespeare_char", "bf16", None)),
    ("tf32", "shakespeare_char cuda tf32", ("shakespeare_char", "tf32", tf32_iters)),
]
print(f"# time plan for '{gpu}' at MFU {mfu:g} (floor {floor * 1e3:g} ms per iteration), "
      f"{budget_s:g} s budget with {summary_s:g} s kept for the summary", file=sys.stderr)


def peak_of(dtype):
    peak = gpu_spec_peak(gpu, dtype)
    if peak.flops is None:  # no datasheet row: plan on an H100's figure and say so
        return gpu_spec_peak("NVIDIA H100 80GB HBM3", dtype), " (no datasheet row for this GPU: H100 figures assumed)"
    return peak, ""


def fit(scenario, peak, most, seconds):
    """The most iterations (<= most) whose estimate fits in `seconds`, 0 if not MIN_ITERS."""
    lo, hi = 0, most
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate(scenario, VOCAB, peak.flops, mfu, iters=mid, floor_s_per_iter=floor).total_s <= seconds:
            lo = mid
        else:
            hi = mid - 1
    return lo if lo >= MIN_ITERS else 0


# what the sized runs share: the budget less the fixed stages, the summary and the default run
left = budget_s - summary_s - sum(v for _, _, v in stages if isinstance(v, float))
total = 0.0
for key, name, what in stages:
    iters = ""
    if isinstance(what, float):
        seconds, how = what, "fixed allowance"
    else:
        scen, dtype, most = what
        s = load(scen)
        peak, note = peak_of(dtype)
        most = most or s.train.max_iters
        if key == "cpu-recipe":
            iters = most
        else:  # bf16 first: nanoGPT's recipe, as far as it fits; tf32 in what is left
            iters = fit(s, peak, most, left)
        e = estimate(s, VOCAB, peak.flops, mfu, iters=max(iters, 1), floor_s_per_iter=floor)
        seconds = e.total_s if iters else 0.0
        left -= seconds
        cut = "" if iters == most else (f" (cut from {most} to fit the budget)" if iters else
                                          f" (left out: under {MIN_ITERS} iterations fit the budget)")
        how = (f"{iters} iters {e.train_s * bool(iters):.0f} s + {e.n_evals * bool(iters)} evals "
               f"{e.eval_s * bool(iters):.0f} s at {peak.flops / 1e12:g} TFLOP/s {dtype}{note}{cut}")
    total += seconds
    print(f"#   {name:<44} {seconds:6.0f} s   {how}", file=sys.stderr)
    print(f"{key}\t{seconds:.0f}\t{iters}")
print(f"#   {'total':<44} {total:6.0f} s of {budget_s - summary_s:g} s "
      f"({'within' if total <= budget_s - summary_s else 'OVER'} budget)", file=sys.stderr)
PYEOF
}

if [ "${1:-}" = "--plan-for" ]; then
    plan "${2:?--plan-for needs a GPU name as torch reports it, e.g. 'NVIDIA H100 80GB HBM3'}" >/dev/null
    exit $?
fi

# The whole script runs under one cap: re-enter under `timeout` once.
if [ -z "${GPU_CHECK_CAPPED:-}" ]; then
    export GPU_CHECK_CAPPED=1 GPU_CHECK_T0=$SECONDS
    exec timeout --signal=TERM --kill-after=10 "$BUDGET_S" bash "$SELF" "$@"
fi
start=$SECONDS

"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "gpu-check: no CUDA device visible to torch (is this the CPU wheel? see TORCH= in the Makefile)" >&2; exit 2; }
GPU_NAME=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))")
PLAN=$(plan "$GPU_NAME") || { echo "gpu-check: could not make the time plan" >&2; exit 2; }
planned() { printf '%s\n' "$PLAN" | awk -F'\t' -v s="$1" '$1 == s {print $2}'; }
iters_of() { printf '%s\n' "$PLAN" | awk -F'\t' -v s="$1" '$1 == s {print $3}'; }

summary() {  # summary FILES...: one line per result file, and the bf16 recipe's MFU against docs/performance.md
    "$PY" - "$@" <<'PYEOF'
import sys
from pathlib import Path

from nanobench.store import results

rows = []
for path in sorted(Path(p) for p in sys.argv[1:]):
    run = results.read_run(path)
    m, r = run.meta, run.rows
    steady = r[~r["warmup"].fillna(False).astype(bool) & r["step_time_s"].notna()]
    med = lambda c: steady[c].median() if c in steady and steady[c].notna().any() else None  # noqa: E731
    s = m.get("summary", {})
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    rows.append([m["scenario"]["name"], m["device"]["name"], m["options"]["dtype"], m["status"], str(s.get("iterations")),
                 fmt(s.get("final_val_loss"), ".4f"), fmt(med("step_time_s") and med("step_time_s") * 1e3, ".2f"),
                 fmt(med("tokens_per_s"), ",.0f"), fmt(med("mfu"), ".3f"), fmt(med("mfu_measured"), ".3f"),
                 fmt(s.get("energy_j"), ",.0f"), fmt(r["mem_peak_bytes"].max() / 2**20, ",.0f")])
head = ["scenario", "device", "dtype", "status", "iters", "val loss", "ms/iter", "tokens/s", "mfu", "mfu_meas", "energy J", "peak MiB"]
widths = [max(len(h), *(len(x[i]) for x in rows)) for i, h in enumerate(head)] if rows else [len(h) for h in head]
for line in [head, *rows]:
    print("  ".join(c.ljust(w) for c, w in zip(line, widths)))
# docs/performance.md: what to expect of nanoGPT's GPU recipe in bf16 (an estimate until measured)
EXPECTED = (0.05, 0.12)
for row in rows:
    if row[0] == "shakespeare_char" and row[2] == "bf16" and row[8] != "-":
        mfu = float(row[8])
        where = "inside" if EXPECTED[0] <= mfu <= EXPECTED[1] else "OUTSIDE"
        print(f"shakespeare_char bf16 MFU {mfu:.3f}: {where} the expected {EXPECTED[0]:.2f}-{EXPECTED[1]:.2f} "
              f"(docs/performance.md); val loss {row[5]} at {row[4]} iterations (nanoGPT's README: 1.4697 at 5000)")
PYEOF
}

rm -rf "$OUT" && mkdir -p "$OUT"  # this check's results only: never the last run's too
"$PY" -m nanobench env >&2
failed=()
printf 'stage\texit\tseconds\tplanned_s\n' > "$OUT/stages.tsv"

stage() {  # stage KEY NAME COMMAND...: capped at 1.5 x its plan, and at what is left of the budget
    local key=$1 name=$2; shift 2
    local plan_s; plan_s=$(planned "$key")
    local left=$((BUDGET_S - SUMMARY_S - (SECONDS - start)))
    local cap=$(( ${plan_s:-60} * 3 / 2 + 10 ))
    [ "$cap" -le "$left" ] || cap=$left
    if [ "$cap" -le 5 ]; then
        failed+=("$name (no time left)"); echo "== $name: skipped, budget spent" >&2
        printf '%s\tskipped\t0\t%s\n' "$name" "${plan_s:-?}" >> "$OUT/stages.tsv"; return
    fi
    local t0=$SECONDS
    touch "$OUT/.stage-start"
    echo "== $name (planned ${plan_s:-?} s, cap ${cap} s)" >&2
    timeout --signal=TERM --kill-after=10 "$cap" "$@"
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s (planned ${plan_s:-?} s)" >&2
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "${plan_s:-?}" >> "$OUT/stages.tsv"
    [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
    # this stage's runs, shown now: a later stage cut by the budget cannot hide them
    local new; new=$(find "$OUT" -maxdepth 1 -name '*.parquet' -newer "$OUT/.stage-start")
    [ -z "$new" ] || summary $new >&2
}

sized() {  # sized KEY NAME SCENARIO DTYPE: a run of the planned length, or left out saying why
    local iters; iters=$(iters_of "$1")
    if [ "${iters:-0}" -eq 0 ]; then
        echo "== $2: left out, no useful length fits the budget on $GPU_NAME" >&2
        printf '%s\tleft out\t0\t0\n' "$2" >> "$OUT/stages.tsv"; return
    fi
    stage "$1" "$2 ($iters iters)" "$PY" -m nanobench run "$3" --device cuda --dtype "$4" --max-iters "$iters" --out "$OUT"
}

# never run on a GPU by any session yet: first
stage tune "tune cuda (dtype, optimizer, sdpa)" "$PY" -m nanobench tune shakespeare_char_cpu --device cuda --axes dtype,optimizer,sdpa --dry-run
stage graphs "cuda graphs (reduce-overhead, 300 iters)" "$PY" -m nanobench run shakespeare_char_cpu --device cuda --dtype bf16 --compile --compile-mode reduce-overhead --max-iters 300 --out "$OUT"
stage tests "gpu tests" "$PY" -m pytest -q -p no:cacheprovider -m gpu tests
stage cpu-recipe "shakespeare_char_cpu cuda fp32" "$PY" -m nanobench run shakespeare_char_cpu --device cuda --dtype fp32 --out "$OUT"
sized bf16 "shakespeare_char cuda bf16" shakespeare_char bf16
sized tf32 "shakespeare_char cuda tf32" shakespeare_char tf32

echo "== summary of $OUT" >&2
cat "$OUT/stages.tsv" >&2
shopt -s nullglob
ran=("$OUT"/*.parquet)
[ ${#ran[@]} -eq 0 ] || summary "${ran[@]}"
"$PY" -m nanobench compare "$OUT"

echo "gpu-check: $((SECONDS - start)) s in all (budget $BUDGET_S s)" >&2
if [ ${#failed[@]} -gt 0 ]; then
    printf 'gpu-check: FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "gpu-check: all passed" >&2
