#!/usr/bin/env bash
# The end-to-end demo on the embedded default configuration. Extra arguments go to `taclab demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
exec .venv/bin/taclab demo "$@"
