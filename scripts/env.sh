# Source me: the environment every OxyRec command runs in.
# Caches, stores and homes live under the project's work dir (or /tmp), never in $HOME.
OXY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OXY_ROOT
export OXY_HOME="${OXY_HOME:-$OXY_ROOT/.oxy}"
export OXY_VENV="${OXY_VENV:-$OXY_ROOT/.venv}"
export DAGSTER_HOME="${DAGSTER_HOME:-$OXY_HOME/dagster_home}"
export MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-sqlite:///$OXY_HOME/mlflow.db}"
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 DAGSTER_DISABLE_TELEMETRY=1
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$OXY_HOME/cache/pip}"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$OXY_HOME/cache}"
export MPLCONFIGDIR="$OXY_HOME/cache/matplotlib"
export HF_HOME="$OXY_HOME/cache/huggingface" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TORCH_EXTENSIONS_DIR="$OXY_HOME/cache/torch_extensions"
export TRITON_CACHE_DIR="$OXY_HOME/cache/triton"
export SPARK_LOCAL_IP=127.0.0.1
export SPARK_LOCAL_DIRS="${SPARK_LOCAL_DIRS:-/tmp/oxy-spark-$(id -u)}"
export PYTHONPYCACHEPREFIX="$OXY_HOME/cache/pycache"
export DS_ACCELERATOR=cpu
mkdir -p "$OXY_HOME" "$DAGSTER_HOME" "$PIP_CACHE_DIR" "$MPLCONFIGDIR" "$SPARK_LOCAL_DIRS"
if [ ! -f "$DAGSTER_HOME/dagster.yaml" ]; then
  printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"
fi
