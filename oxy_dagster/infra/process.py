"""Long-running servers as child processes: the MLflow tracking server, the Dagster daemon and webserver.

Each runs in its own process group (so SIGTERM reaches its children and a background start obeys it), logs to a
file, and counts as up when its port answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..net import free_port, wait_for_port


def stop_process_group(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``, to a child started with ``start_new_session`` and all its own."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class ManagedProcess:
    """``with ManagedProcess(cmd, log, port=p) as proc:`` starts ``cmd``, waits for ``port``, stops the group."""

    def __init__(self, cmd: list[str], log: str | Path, env: dict | None = None, cwd: str | Path | None = None,
                 port: int | None = None, ready_timeout_s: float = 120.0):
        self.cmd, self.log, self.env, self.cwd = cmd, Path(log), env, cwd
        self.port, self.ready_timeout_s = port, ready_timeout_s
        self.proc: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                     start_new_session=True)
        if self.port is None:
            return self
        deadline = time.monotonic() + self.ready_timeout_s
        while not wait_for_port(self.port, 1.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:  # died, or never came up
                tail = self.log.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"{Path(self.cmd[0]).name} did not answer on port {self.port}: {tail}")
        return self

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.proc is not None:
            stop_process_group(self.proc, timeout_s)

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def venv_bin(name: str) -> str:
    """A console script installed beside this interpreter (``dagster-daemon``, ``mlflow``, ...)."""
    return str(Path(sys.executable).parent / name)


def mlflow_server(backend_uri: str, artifacts: str | Path, log: str | Path, env: dict | None = None) -> ManagedProcess:
    """An MLflow tracking server over ``backend_uri`` (e.g. PostgreSQL) serving artifacts from ``artifacts``."""
    port = free_port()
    env = {**(env or os.environ), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = ManagedProcess([venv_bin("mlflow"), "server", "--backend-store-uri", backend_uri, "--artifacts-destination",
                           str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                          log, env=env, port=port)
    proc.url = f"http://127.0.0.1:{port}"
    return proc
