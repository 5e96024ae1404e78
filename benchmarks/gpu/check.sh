#!/usr/bin/env bash
# The GPU check in one command; on the lent GPU machine (benchmarks/README.md, "The GPU check"):
#   bash benchmarks/gpu/check.sh "$OUT"
# Anywhere else it runs dry (no GPU: a few numpy tests and one tiny bench row stand in):
#   bash benchmarks/gpu/check.sh OUT --dry [--tests "tests/test_losses.py -k mse"] [--budget S]
# The work is in check.py (its docstring lists the phases and files); PYTHON chooses the
# interpreter (default python3: on the GPU machine, the image's, which holds torch and cupy).
set -uo pipefail
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" "$(dirname "$0")/check.py" "$@"
