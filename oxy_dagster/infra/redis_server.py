"""A throwaway redis-server on a loopback port: without persistence for tests and benchmarks, or with append-only
persistence, killed (-9) and started again on the same port and data directory by the near-line fault drill."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..net import free_port, wait_for_port


class RedisServer:
    """``with RedisServer() as r: r.url``. With ``appendonly``, ``r.kill9()`` then ``r.start()`` replays the
    append-only file."""

    def __init__(self, data_dir: str | Path | None = None, appendonly: bool = True, fsync: str = "always",
                 exe: str | None = None):
        self.exe = exe or shutil.which("redis-server")
        if self.exe is None:
            raise FileNotFoundError("redis-server not found (apt-get install -y redis-server)")
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="oxy-redis-"))
        self.appendonly, self.fsync, self.port = appendonly, fsync, free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", self.fsync] if self.appendonly else \
            ["--appendonly", "no"]
        self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                                      *persistence, "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(self.port, 15):
            raise RuntimeError(f"redis-server did not start on {self.port}")
        return self

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no final fsync; what a crashed or OOM-killed server leaves behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if not self.appendonly:
            shutil.rmtree(self.dir, ignore_errors=True)
