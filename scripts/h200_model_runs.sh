#!/usr/bin/env bash
# The whole-model GPU runs of the performance issue, in stages that each fit one 10-minute
# device call. Run from the repository root on the GPU machine, with the peer's Triton files in
# .peer/ (anchors.md) and OUT set to where results should go:
#
#   bash scripts/h200_model_runs.sh targets     # prefill 512/2048/8192 + cached decode, both transformers paths and ours
#   bash scripts/h200_model_runs.sh llm-perf    # llm-perf for reference, independent, triton, triton-static-fused
#   bash scripts/h200_model_runs.sh seed-ours   # seed-perf for triton and independent (about 3 min each)
#   bash scripts/h200_model_runs.sh seed-ref    # seed-perf for reference and reference-compiled, llm-perf for the latter
#   bash scripts/h200_model_runs.sh profile     # kernel breakdown of prefill and decode step (scripts/profile_model.py)
#   bash scripts/h200_model_runs.sh compile     # which part of a compiled variant Inductor fails on, if any
#
# Each stage writes one JSON file of reports to $OUT; `ssmboard import FILE` loads it into a store.
set -euo pipefail
OUT=${OUT:-benchmarks}
DATE=$(date -u +%Y-%m-%d)
BENCH="python3 scripts/bench_model.py --dtype bfloat16"
case "${1:-}" in
  targets)
    $BENCH --variants transformers transformers+peer triton-static triton-static-fused \
      --suites h200-targets --timeout 150 --out "$OUT/model-targets-h200-$DATE.json" ;;
  seed-ours)
    $BENCH --variants triton independent --suites seed-perf --timeout 190 --out "$OUT/model-seedperf-ours-h200-$DATE.json" ;;
  seed-ref)
    $BENCH --variants reference reference-compiled --suites seed-perf --timeout 230 --out "$OUT/model-seedperf-ref-h200-$DATE.json"
    $BENCH --variants reference-compiled --suites llm-perf --timeout 120 --out "$OUT/model-llmperf-compiled-h200-$DATE.json" ;;
  llm-perf)
    $BENCH --variants reference independent triton triton-static-fused --suites llm-perf --timeout 110 \
      --out "$OUT/model-llmperf-h200-$DATE.json" ;;
  profile)
    python3 scripts/profile_model.py --compile-parts --out "$OUT" ;;
  compile)
    python3 scripts/check_compile.py --length 256 ;;
  *)
    sed -n '2,14p' "$0"; exit 2 ;;
esac
