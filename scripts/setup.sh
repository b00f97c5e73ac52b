#!/usr/bin/env bash
# Create the virtualenv and install OxyRec with its pinned dependencies (idempotent).
# torch is held to the 2.13.0 CPU wheel by constraints.txt so nothing pulls a CUDA build.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$OXY_ROOT"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp="$OXY_VENV/.oxy-installed"
want="$( (cat setup.cfg constraints.txt; echo "${OXY_EXTRAS:-}") | sha256sum | cut -d' ' -f1)"
if [ ! -x "$OXY_VENV/bin/python" ]; then
  echo "[setup] creating virtualenv $OXY_VENV"
  "$PY" -m venv "$OXY_VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing OxyRec and pinned dependencies (a few minutes the first time;"
  echo "[setup] llama-cpp-python builds from source once: ~7-15 min on 2 cores, then pip's cache serves it)"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  # A portable llama.cpp build: a native one uses every instruction the CPU advertises, and on a VM that
  # advertises AMX without enabling it (an Intel Xeon here) the server dies with SIGILL on its first completion.
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
  "$OXY_VENV/bin/pip" install -q --upgrade pip setuptools wheel 2>&1 | grep -v "is ignored" || true
  "$OXY_VENV/bin/pip" install -q -c constraints.txt -e ".[cpu,test,llm${OXY_EXTRAS:+,$OXY_EXTRAS}]" 2>&1 \
    | grep -v "is ignored" || true
  "$OXY_VENV/bin/python" -c "import torch, dagster, pyspark, mlflow, faiss, deepspeed, openai, triton, llama_cpp" \
    || { echo "[setup] install failed" >&2; exit 1; }
  "$OXY_VENV/bin/python" -c "from llama_cpp import Llama; from oxy_dagster.reasoning.server import packaged_gguf; \
Llama(model_path=str(packaged_gguf()), n_ctx=64, verbose=False)('hi', max_tokens=1)" \
    || { echo "[setup] llama.cpp cannot run the packaged model on this CPU (a wheel built for another CPU, from" \
              "pip's cache?): '$OXY_VENV/bin/pip cache remove llama_cpp_python' and run setup again" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
