#!/usr/bin/env bash
# Creates .venv and installs taclab with its dependencies on first use; later runs reuse it.
# Re-installs when pyproject.toml or constraints.txt change.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.taclab-setup
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  echo "taclab: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
echo "taclab: installing dependencies into .venv (first run takes a minute or two)" >&2
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
echo "$want" > "$stamp"
