#!/usr/bin/env bash
# Set up, lint (ruff + architecture contracts), then run the whole test suite (slow end-to-end tests included).
# Extra args go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$OXY_ROOT/scripts/setup.sh"
# The store tests run a real redis-server (started and stopped by a fixture); install it if we can.
if ! command -v redis-server >/dev/null; then
  echo "[test] installing redis-server (apt)"
  { apt-get update -qq && apt-get install -y -qq redis-server; } >/dev/null 2>&1 \
    || sudo -n sh -c 'apt-get update -qq && apt-get install -y -qq redis-server' >/dev/null 2>&1 \
    || echo "[test] could not install redis-server: the Redis tests will be skipped" >&2
fi
cd "$OXY_ROOT"
bash "$OXY_ROOT/scripts/lint.sh"
"$OXY_VENV/bin/python" -m pytest -q "$@"
