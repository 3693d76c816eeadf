#!/usr/bin/env bash
# The whole-model GPU runs of the performance issues, in stages that each fit one 10-minute
# device call. Run from the repository root on the GPU machine, with the peer's Triton files in
# .peer/ (shared/anchors.md) and OUT set to where results should go:
#
#   bash scripts/h200_model_runs.sh targets     # issue 15 on config:bamba-9b-4l: prefill 2048 + decode 128 at batch 1/4/16/64
#   bash scripts/h200_model_runs.sh bamba9b     # issue 15 on config:bamba-9b (32 layers): prefill 2048/8192/32768, decode after 2048
#   bash scripts/h200_model_runs.sh issue5      # issue 5's targets (prefill 512/2048/8192, decode 128 at batch 1)
#   bash scripts/h200_model_runs.sh llm-perf    # llm-perf for reference-c64, independent-c64, triton-c64, triton-fast
#   bash scripts/h200_model_runs.sh seed        # seed-perf for triton-c64, independent-c64, reference-c64
#   bash scripts/h200_model_runs.sh profile     # kernel breakdown of prefill and decode step (scripts/profile_model.py)
#   bash scripts/h200_model_runs.sh compile     # which part of a compiled variant Inductor fails on, if any
#
# Each stage writes one JSON file of reports to $OUT; `ssmboard import FILE` loads it into a store.
set -euo pipefail
OUT=${OUT:-benchmarks}
DATE=$(date -u +%Y-%m-%d)
BENCH="python3 scripts/bench_model.py --model config:bamba-9b-4l --dtype bfloat16"
case "${1:-}" in
  targets)
    $BENCH --variants transformers+peer triton-fast --suites bamba-4l-targets --timeout 300 \
      --out "$OUT/model-4l-targets-h200-$DATE.json" ;;
  bamba9b)
    python3 scripts/bench_bamba9b.py --variants transformers+peer triton-fast --timeout 280 \
      --out "$OUT/model-bamba9b-h200-$DATE.json" ;;
  issue5)
    $BENCH --variants transformers transformers+peer triton-fast --suites h200-targets --timeout 200 \
      --out "$OUT/model-targets-h200-$DATE.json" ;;
  llm-perf)
    $BENCH --variants reference-c64 independent-c64 triton-c64 triton-fast --suites llm-perf --timeout 110 \
      --out "$OUT/model-llmperf-h200-$DATE.json" ;;
  seed)
    $BENCH --variants triton-c64 independent-c64 reference-c64 --suites seed-perf --timeout 230 \
      --out "$OUT/model-seedperf-h200-$DATE.json" ;;
  profile)
    python3 scripts/profile_model.py --compile-parts --decode-after 2048 --top 40 --out "$OUT" ;;
  compile)
    python3 scripts/check_compile.py --length 256 ;;
  *)
    sed -n '2,14p' "$0"; exit 2 ;;
esac
