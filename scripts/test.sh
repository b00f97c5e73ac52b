#!/usr/bin/env bash
# Set up, lint (ruff + architecture contracts), then run the whole test suite (slow end-to-end tests included).
# Extra args go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$OXY_ROOT/scripts/setup.sh"
# Real servers for the store, control-plane and UI tests (started and stopped by fixtures): redis-server,
# PostgreSQL, and Debian's Chromium with its WebDriver. Install what is missing, if we can.
need=()
command -v redis-server >/dev/null || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ "${#need[@]}" -gt 0 ]; then
  echo "[test] installing ${need[*]} (apt)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >/dev/null 2>&1 \
    || sudo -n sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${need[*]}" \
       >/dev/null 2>&1 \
    || echo "[test] could not install ${need[*]}: the tests that need them will be skipped" >&2
fi
cd "$OXY_ROOT"
bash "$OXY_ROOT/scripts/lint.sh"
"$OXY_VENV/bin/python" -m pytest -q "$@"
