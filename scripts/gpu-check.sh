#!/usr/bin/env bash
# gpu-check: everything nanobench can only check on a CUDA machine, in one go, in 8 minutes.
#
#   make gpu-check                                   on a machine with an NVIDIA GPU
#   bash scripts/gpu-check.sh --plan-for "NVIDIA H200"   print the time plan only (no GPU needed)
#
# Python: $PY if set, else $VENV/bin/python if that venv exists, else python3 with this
# checkout on PYTHONPATH (a lent GPU machine has torch but no registry: nothing is installed).
#
# Stages, each sized before it starts from the scenario's FLOPs, this GPU's datasheet peak and
# a stated MFU (nanobench/run/estimate.py), and capped at 1.5x its plan or what is left of the
# whole budget, whichever is less:
# 1. the GPU-marked tests (tests/measure/test_gpu.py)
# 2. shakespeare_char_cpu on cuda, fp32 (the default scenario: compares with a CPU run)
# 3. shakespeare_char in bf16, its full 5000 iterations (nanoGPT's GPU recipe; val ~1.47)
# 4. shakespeare_char in tf32, truncated to TF32_ITERS iterations
# 5. `nanobench tune` on cuda over dtype, optimizer and SDPA backend (--dry-run: no record)
# 6. CUDA graphs: shakespeare_char_cpu in bf16, --compile --compile-mode reduce-overhead, 300 iterations
# then a summary. The whole script stops at BUDGET_S (default 480 s = 8 minutes, set-up
# included); a stage ended by its cap still writes its file (status `interrupted`).
# Results: $OUT (default results/gpu-check/), emptied first: runs never pile up.
set -u
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"  # absolute: the re-exec below runs after the cd
cd "$(dirname "$SELF")/.."
BUDGET_S="${BUDGET_S:-480}"
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

# plan GPU_NAME -> lines "stage<TAB>planned_s", the first line a header for people
plan() {
    "$PY" - "$1" "$PLAN_MFU" "$FLOOR_S" "$TF32_ITERS" <<'PYEOF'
import sys

from nanobench.measure.peaks import gpu_spec_peak
from nanobench.run.estimate import estimate
from nanobench.run.scenario import load

gpu, mfu, floor, tf32_iters = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
VOCAB = 65  # tiny Shakespeare
stages = [("setup", None, None, None), ("gpu tests", None, None, None),
          ("shakespeare_char_cpu cuda fp32", "shakespeare_char_cpu", "fp32", None),
          ("shakespeare_char cuda bf16", "shakespeare_char", "bf16", None),
          (f"shakespeare_char cuda tf32 ({tf32_iters} iters)", "shakespeare_char", "tf32", tf32_iters),
          ("tune cuda (dtype, optimizer, sdpa)", None, None, None),
          ("cuda graphs (reduce-overhead, 300 iters)", None, None, None)]
# imports + `nanobench env` calibration; 13 short tests; ~8 lockstep candidates x 60 steps of
# a tiny model; one compile of forward and backward with graph capture, then 300 short steps
fixed = {"setup": 30.0, "gpu tests": 90.0, "tune cuda (dtype, optimizer, sdpa)": 45.0,
         "cuda graphs (reduce-overhead, 300 iters)": 90.0}
print(f"# time plan for '{gpu}' at MFU {mfu:g} (floor {floor * 1e3:g} ms per iteration), before any stage runs",
      file=sys.stderr)
total = 0.0
for name, scen, dtype, iters in stages:
    if scen is None:
        seconds, how = fixed[name], "fixed allowance"
    else:
        peak = gpu_spec_peak(gpu, dtype)
        if peak.flops is None:  # no datasheet row: plan on an H100's figure and say so
            peak = gpu_spec_peak("NVIDIA H100 80GB HBM3", dtype)
            gpu_note = " (no datasheet row for this GPU: H100 figures assumed)"
        else:
            gpu_note = ""
        e = estimate(load(scen), VOCAB, peak.flops, mfu, iters=iters, floor_s_per_iter=floor)
        seconds = e.total_s
        how = (f"{e.iters} iters {e.train_s:.0f} s + {e.n_evals} evals {e.eval_s:.0f} s at "
               f"{peak.flops / 1e12:g} TFLOP/s {dtype}{gpu_note}")
    total += seconds
    print(f"#   {name:<44} {seconds:6.0f} s   {how}", file=sys.stderr)
    print(f"{name}\t{seconds:.0f}")
print(f"#   {'total':<44} {total:6.0f} s", file=sys.stderr)
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

rm -rf "$OUT" && mkdir -p "$OUT"  # this check's results only: never the last run's too
"$PY" -m nanobench env >&2
failed=()

stage() {  # stage NAME COMMAND...: capped at 1.5 x its plan, and at what is left of the budget
    local name=$1; shift
    local plan_s; plan_s=$(planned "$name")
    local left=$((BUDGET_S - 15 - (SECONDS - start)))  # 15 s kept for the summary
    local cap=$(( ${plan_s:-60} * 3 / 2 + 10 ))
    [ "$cap" -le "$left" ] || cap=$left
    if [ "$cap" -le 5 ]; then failed+=("$name (no time left)"); echo "== $name: skipped, budget spent" >&2; return; fi
    local t0=$SECONDS
    echo "== $name (planned ${plan_s:-?} s, cap ${cap} s)" >&2
    timeout --signal=TERM --kill-after=10 "$cap" "$@"
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s (planned ${plan_s:-?} s)" >&2
    [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
}

stage "gpu tests" "$PY" -m pytest -q -p no:cacheprovider -m gpu tests
stage "shakespeare_char_cpu cuda fp32" "$PY" -m nanobench run shakespeare_char_cpu --device cuda --dtype fp32 --out "$OUT"
stage "shakespeare_char cuda bf16" "$PY" -m nanobench run shakespeare_char --device cuda --dtype bf16 --out "$OUT"
stage "shakespeare_char cuda tf32 ($TF32_ITERS iters)" "$PY" -m nanobench run shakespeare_char --device cuda --dtype tf32 --max-iters "$TF32_ITERS" --out "$OUT"
stage "tune cuda (dtype, optimizer, sdpa)" "$PY" -m nanobench tune shakespeare_char_cpu --device cuda --axes dtype,optimizer,sdpa --dry-run
stage "cuda graphs (reduce-overhead, 300 iters)" "$PY" -m nanobench run shakespeare_char_cpu --device cuda --dtype bf16 --compile --compile-mode reduce-overhead --max-iters 300 --out "$OUT"

echo "== summary of $OUT" >&2
"$PY" - "$OUT" <<'PYEOF'
import sys
from pathlib import Path

from nanobench.store import results

rows = []
for path in sorted(Path(sys.argv[1]).glob("*.parquet")):
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
"$PY" -m nanobench compare "$OUT"

echo "gpu-check: $((SECONDS - start)) s in all (budget $BUDGET_S s)" >&2
if [ ${#failed[@]} -gt 0 ]; then
    printf 'gpu-check: FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "gpu-check: all passed" >&2
