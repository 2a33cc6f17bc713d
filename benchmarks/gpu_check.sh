#!/bin/sh
# The paper configuration's joint step on one GPU, four variants, one JSON (benchmarks/gpu_check.py).
#   benchmarks/gpu_check.sh              # on the GPU machine, from any folder
#   benchmarks/gpu_check.sh --dry-run    # a few CPU iterations of the default config
cd "$(dirname "$0")/.." && exec "${PYTHON:-python}" -m benchmarks.gpu_check "$@"
