#!/usr/bin/env bash
# Check the GPU paths in about five minutes (see src/mrtranslate/gpu_check.py); exits 0 without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PYTHON" -m mrtranslate.gpu_check "$@"
