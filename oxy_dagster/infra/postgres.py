"""A throwaway PostgreSQL server on a loopback port, for the control plane's tests and a laptop's production rehearsal.

PostgreSQL refuses to run as root: under root the server runs as a system user (``oxypg``, created if missing)
and owns its data directory. ``restart()`` and ``kill()`` let fault tests take it down mid-run.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..net import free_port, wait_for_port

SERVICE_USER = "oxypg"


def postgres_bin() -> Path | None:
    """The newest installed server binaries (Debian: ``/usr/lib/postgresql/<major>/bin``), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("pg_ctl")
    return Path(exe).parent if exe else None


class LocalPostgres:
    """``with LocalPostgres(databases=("dagster", "mlflow")) as pg: pg.url("dagster")`` -> a SQLAlchemy URL."""

    def __init__(self, databases: tuple[str, ...] = ("dagster", "mlflow"), root: str | Path | None = None):
        self.bin = postgres_bin()
        if self.bin is None:
            raise FileNotFoundError("PostgreSQL server binaries not found (Debian: apt-get install -y postgresql)")
        self.databases = databases
        self.root = Path(root or tempfile.mkdtemp(prefix="oxy-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = free_port()
        self.user = SERVICE_USER if os.geteuid() == 0 else None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        out = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o",
                        f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off", "start", check=False)
        if out.returncode != 0 or not wait_for_port(self.port, 30):
            raise RuntimeError(f"PostgreSQL did not start: {out.stderr[-500:]} (log: {self.log})")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop (fast), stay down ``down_s`` seconds, start again on the same port."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> LocalPostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user:
            if subprocess.run(["id", "-u", self.user], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", self.user], check=True)
            shutil.chown(self.root, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in self.databases:
                cur.execute(f'CREATE DATABASE "{db}"')
        conn.close()
        return self

    def __exit__(self, *exc) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
