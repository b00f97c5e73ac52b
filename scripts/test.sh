#!/usr/bin/env bash
# Set up, then run the whole test suite (slow end-to-end tests included). Extra args go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$OXY_ROOT/scripts/setup.sh"
cd "$OXY_ROOT"
"$OXY_VENV/bin/python" -m pytest -q "$@"
