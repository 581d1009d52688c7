#!/usr/bin/env bash
# Times Python profilis (the library this project ports) on an empty function: installs it from
# PyPI into a virtual environment under target/ (not committed) and runs python_profilis.py.
#
#   bash peers/scripts/python_profilis.sh      # CALLS=100000 ROUNDS=5 by default
#
# Needs python3 with the venv module and access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."

PROFILIS_VERSION="${PROFILIS_VERSION:-1.0.0}"
VENV="${CARGO_TARGET_DIR:-target}/python-profilis/venv"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import profilis, prometheus_client, sys; sys.exit(profilis.__version__ != '$PROFILIS_VERSION')" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "profilis[prometheus]==$PROFILIS_VERSION"
fi
exec "$VENV/bin/python" peers/scripts/python_profilis.py
