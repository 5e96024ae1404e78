#!/usr/bin/env bash
# Run HERE (a machine with network) before the GPU check: downloads into benchmarks/gpu/wheels/
# (git-ignored; the `run` call carries it) the Python 3.12 wheels that the GPU machine lacks.
#
# The GPU machine's image has torch, cupy, numpy, pytest, hypothesis, matplotlib, safetensors,
# tqdm, threadpoolctl, pytest-xdist and pytest-timeout, and no network. Missing there:
#   array-api-compat  xpnet's dependency
#   array-api-strict  test extra: the conformance backend, and every test's reference namespace
#   expecttest        test extra: torch's module_db imports it (tests/test_module_db.py)
# All three are pure-Python wheels with no dependency the image lacks (strict needs numpy only).
# The pins are the versions of the development venv; override with e.g. STRICT=2.6.1.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
COMPAT=${COMPAT:-1.16.0}
STRICT=${STRICT:-2.6.1}
EXPECTTEST=${EXPECTTEST:-0.3.0}

rm -rf wheels
mkdir wheels
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d wheels \
    "array-api-compat==$COMPAT" "array-api-strict==$STRICT" "expecttest==$EXPECTTEST"
ls -l wheels
total=$(du -sb wheels | cut -f1)
echo "benchmarks/gpu/wheels: $(ls wheels | wc -l) wheels, $total bytes ($(( total / 1024 )) KiB; the run tool carries at most 64 MiB)"
