#!/usr/bin/env bash
# One prepared GPU check (under 5 minutes on one GPU): the engine against the Hugging Face Trainer with bf16
# autocast, same network/head/pooling/optimizer, for MiniLM-L6 and one larger encoder (all-mpnet-base-v2 when
# the zoo has it, or GPU_CHECK_LARGE_MODEL=<model folder>), examples/s and the share of the GPU's measured bf16
# matmul peak, and a `startpoint recommend --run --budget 3` timing. Writes benchmarks/results/gpu_check.json.
# Without a GPU it runs on CPU at tiny sizes and the file says no GPU was found.
#
#   benchmarks/gpu_check.sh [--quick] [--out FILE]       (GPU_CHECK_QUICK=1 is the same as --quick)
#   benchmarks/gpu_check.sh --pack DIR [--out FILE]      (a GPU machine without this project's packages: DIR from
#                                                         benchmarks/gpu_check_pack.py; encoders built from config)
#   benchmarks/gpu_check.sh --write-docs                 (render the results file into docs/engine.md)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -x .venv/bin/python ]]; then
    PY=.venv/bin/python
elif command -v python >/dev/null 2>&1; then
    PY=$(command -v python)
elif command -v python3 >/dev/null 2>&1; then
    PY=$(command -v python3)
else
    echo "gpu_check: no .venv/bin/python and no python or python3 on PATH; run 'make install' first" >&2
    exit 2
fi
args=("$@")
if [[ "${GPU_CHECK_QUICK:-0}" == "1" ]]; then
    args+=(--quick)
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PY" benchmarks/gpu_check.py "${args[@]}"
