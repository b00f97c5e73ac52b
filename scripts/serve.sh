#!/usr/bin/env bash
# Start the recommendation service on 127.0.0.1 (port 8000 unless OXY_SERVE_PORT), serving oxyrec@champion
# from the MLflow registry that `bash scripts/main.sh` filled. Extra arguments go to the server, e.g.
#   bash scripts/serve.sh --bundle .oxy/data/synthetic/models/deployed/bundle   (a local bundle instead)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$OXY_ROOT/scripts/setup.sh"
cd "$OXY_ROOT"
exec "$OXY_VENV/bin/python" -m oxy_dagster.serving --host 127.0.0.1 --port "${OXY_SERVE_PORT:-8000}" "$@"
