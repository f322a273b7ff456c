#!/usr/bin/env bash
# The committed example: nanoGPT's CPU recipe with 3 seeds in fp32 and in bf16 on this
# machine's CPU, compared, reported, and a 200-step lockstep parity record of the two dtypes.
# Run it on a quiet machine: timings are part of the result. ~8 minutes on 2 cores.
#   bash scripts/example-runs.sh [OUT_RESULTS] [OUT_REPORT]
set -euo pipefail
cd "$(dirname "$0")/.."
NB=${NB:-.venv/bin/nanobench}
OUT=${1:-results/examples/cpu-fp32-vs-bf16}
REPORT=${2:-reports/examples/cpu-fp32-vs-bf16}
SEEDS=${SEEDS:-1337,1338,1339}

mkdir -p "$OUT"
for dtype in fp32 bf16; do
  NANOBENCH_GROUP_ID="example-$dtype" $NB run shakespeare_char_cpu --device cpu --dtype "$dtype" \
    --seeds "$SEEDS" --out "$OUT" --quiet
done
$NB parity shakespeare_char_cpu --a cpu:fp32 --b cpu:bf16 --iters 200 --out "$OUT/parity" --quiet
COLUMNS=160 $NB compare "$OUT" | tee "$OUT/compare.txt"
$NB report "$OUT" -o "$REPORT" --stills --title "shakespeare_char_cpu: cpu fp32 vs cpu bf16, 3 seeds each"
