#!/usr/bin/env bash
# The committed examples' text and JSON outputs, re-made from their committed result files (no
# training): compare.txt of cpu-fp32-vs-bf16 and nanogpt-cpu-recipe, explain.txt/json of the
# smoke ladder, and both orders of the CPU recipe against shakespeare_char:cuda:bf16. The last
# two estimate missing runs from this machine's measured matmul peak, so their estimates are
# this machine's. The HTML reports under reports/examples are re-made at the end, from the same
# files (REP=DIR writes them elsewhere).
#   bash scripts/example-outputs.sh
# EX=DIR writes into a copy of results/examples instead (tests/test_examples.py compares the two).
set -euo pipefail
cd "$(dirname "$0")/.."
NB=${NB:-.venv/bin/nanobench}
EX=${EX:-results/examples}
REP=${REP:-reports/examples}
export NO_COLOR=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

COLUMNS=160 $NB compare "$EX/cpu-fp32-vs-bf16" > "$EX/cpu-fp32-vs-bf16/compare.txt"
COLUMNS=220 $NB compare "$EX/nanogpt-cpu-recipe" > "$EX/nanogpt-cpu-recipe/compare.txt"

# the smoke ladder: A = 3 seeds of 20 iterations on 1 thread, B = 3 seeds of the wider model, 30
# iterations on 2 threads; every rung's runs are in the folder
mkdir -p "$tmp/a" "$tmp/b" "$tmp/cpu"
cp "$EX"/explain/smoke-20261129T06290*.parquet "$tmp/a/"
cp "$EX"/explain/smoke-20261129T0629{18,30,45}Z-*.parquet "$tmp/b/"
$NB explain "$tmp/a" "$tmp/b" --results "$EX/explain" > "$EX/explain/explain.txt"
$NB explain "$tmp/a" "$tmp/b" --results "$EX/explain" --json > "$EX/explain/explain.json"

# the CPU recipe's committed fp32 seeds against the GPU recipe in bf16. device-first plans every
# rung on a GPU, the same from any machine. device-last plans its CPU rungs on the machine that
# recorded the runs (AMD EPYC): elsewhere they read "needs the cpu (AMD EPYC) machine", so it is
# re-made only there (DEVICE_LAST=1).
cp "$EX"/cpu-fp32-vs-bf16/*-cpu-fp32-*.parquet "$tmp/cpu/"
orders=device-first
[ "${DEVICE_LAST:-0}" = 1 ] && orders="device-first device-last"
for order in $orders; do
  out=$EX/explain-recipes/explain.txt
  [ "$order" = device-last ] && out=$EX/explain-recipes/explain-device-last.txt
  COLUMNS=250 $NB explain "$tmp/cpu" shakespeare_char:cuda:bf16 --order "$order" --out results \
    --results "$EX/cpu-fp32-vs-bf16" "$EX/explain-recipes" > "$out"
done

# the reports: the fp32-vs-bf16 runs (with a PNG of each figure), and the smoke ladder's runs
# with its explanation
$NB report "$EX/cpu-fp32-vs-bf16" -o "$REP/cpu-fp32-vs-bf16" --stills \
  --title "shakespeare_char_cpu: cpu fp32 vs cpu bf16, 3 seeds each" >/dev/null
$NB report "$EX/explain" -o "$REP/explain" --explain "$tmp/a" "$tmp/b" \
  --title "nanobench explain: smoke, 3 factors" >/dev/null
