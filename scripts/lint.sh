#!/usr/bin/env bash
# Static checks CI runs before the tests: ruff (style, imports, likely bugs) and the import-linter
# architecture contracts in setup.cfg (the core never imports Dagster, stages layered, no cycles).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$OXY_ROOT"
"$OXY_VENV/bin/ruff" check .
"$OXY_VENV/bin/lint-imports" --no-cache
