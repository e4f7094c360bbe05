#!/usr/bin/env bash
# Lint and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl} HF_HUB_OFFLINE=1
.venv/bin/ruff check taclab tests benchmarks
.venv/bin/ruff format --check taclab tests benchmarks
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
