#!/usr/bin/env bash
# Set up, then materialize the whole OxyRec asset graph on the embedded default data.
# OXY_DATASET=beauty (or movielens100k) runs the same graph on a public dataset.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$OXY_ROOT/scripts/setup.sh"
cd "$OXY_ROOT"
echo "[main] materializing main_job (dataset: ${OXY_DATASET:-synthetic}); logs in $OXY_HOME/main_job.log"
start=$(date +%s)
"$OXY_VENV/bin/dg" launch -m jobs.definitions --job main_job > "$OXY_HOME/main_job.log" 2>&1 \
  || { tail -n 40 "$OXY_HOME/main_job.log"; echo "[main] FAILED (full log: $OXY_HOME/main_job.log)" >&2; exit 1; }
grep -E "RUN_SUCCESS|ASSET_CHECK_EVALUATION" "$OXY_HOME/main_job.log" | sed -E 's/^.* - ([A-Z_]+ - .*)$/  \1/' || true
cat <<MSG
[main] done in $(( $(date +%s) - start )) s. Where to look:
  Dagster UI : source scripts/env.sh && .venv/bin/dagster-webserver -w workspace.yaml -h 127.0.0.1 -p 3000
               (+ .venv/bin/dagster-daemon run -w workspace.yaml for schedules, sensors, UI-launched runs)
  MLflow UI  : source scripts/env.sh && .venv/bin/mlflow ui --backend-store-uri "$MLFLOW_TRACKING_URI" -h 127.0.0.1 -p 5000
  Results    : $OXY_HOME/data/${OXY_DATASET:-synthetic}/  (validated/, splits/, swing/, samples/, reports/overview.png,
               sid/<V>/codes.parquet, models/pretrained-V3/eval_test.json, reasoning/*.parquet)
  Instructions: $OXY_HOME/instructions.db (SQLite store of per-user instructions + vectors)
MSG
