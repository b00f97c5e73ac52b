"""A standalone Spark cluster on 127.0.0.1 (a master and N workers), started from pyspark's own ``spark-class``.

``OXY_SPARK_MASTER=spark://127.0.0.1:<port>`` (or ``SparkResource(master=...)``) then runs the data stage on it.
``python -m oxy_dagster.infra.spark_cluster --workers 2`` keeps one up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..settings import setting
from .process import ManagedProcess


@dataclass
class SparkClusterConfig:
    workers: int = setting(2, "worker processes (each its own JVM)")
    cores_per_worker: int = setting(1, "cores each worker offers to executors")
    memory_per_worker: str = setting("2g", "memory each worker offers (>= spark.executor.memory, default 1g)")
    start_timeout_s: float = setting(90.0, "seconds to wait for every worker to register as ALIVE")


BOUND = re.compile(r"Successfully started service '(\w+)' on port (\d+)")


def spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


class StandaloneSparkCluster:
    """Context manager: ``with StandaloneSparkCluster() as c: c.master_url``; logs go to ``log_dir``."""

    def __init__(self, cfg: SparkClusterConfig | None = None, log_dir: str | Path | None = None):
        self.cfg = cfg or SparkClusterConfig()
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="oxy-spark-cluster-"))
        self.procs: list[ManagedProcess] = []
        # Every JVM binds port 0 and the master's ports are read from its log: a port picked here and handed over
        # could be taken before the JVM binds it (Spark then silently moves to the next one).
        self.port = self.ui_port = 0
        self.master_url = ""

    def _env(self) -> dict:
        import pyspark

        return {**os.environ, "SPARK_HOME": str(Path(pyspark.__file__).parent), "SPARK_LOCAL_IP": "127.0.0.1",
                "PYSPARK_PYTHON": sys.executable, "SPARK_NO_DAEMONIZE": "1"}

    def _start(self, name: str, args: list[str]) -> ManagedProcess:
        # Each JVM in its own process group: stopping the cluster also stops its children (executors).
        proc = ManagedProcess([str(spark_class()), *args], self.log_dir / f"{name}.log", env=self._env()).start()
        self.procs.append(proc)
        return proc

    def _bound_ports(self, master: ManagedProcess, deadline: float) -> dict[str, int]:
        """The ports the master's services bound, from its log lines "Successfully started service 'X' on port N"."""
        while True:
            found = dict(BOUND.findall(master.log.read_text(errors="replace")))
            if {"sparkMaster", "MasterUI"} <= found.keys():
                return {k: int(v) for k, v in found.items()}
            if master.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Spark master did not start (found {found}); log {master.log}")
            time.sleep(0.2)

    def status(self) -> dict:
        """The master's JSON status page (workers, their state, cores, running applications)."""
        url = f"http://127.0.0.1:{self.ui_port}/json/"
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read()
        try:
            return json.loads(body)
        except ValueError:
            raise RuntimeError(f"{url} did not answer with the master's JSON status: {body[:200]!r}") from None

    def alive_workers(self) -> int:
        try:
            return sum(w.get("state") == "ALIVE" for w in self.status().get("workers", []))
        except OSError:
            return 0

    def __enter__(self) -> StandaloneSparkCluster:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.cfg.start_timeout_s
        try:
            master = self._start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                            "--port", "0", "--webui-port", "0"])
            ports = self._bound_ports(master, deadline)
            self.port, self.ui_port = ports["sparkMaster"], ports["MasterUI"]
            self.master_url = f"spark://127.0.0.1:{self.port}"
            for i in range(self.cfg.workers):
                self._start(f"worker-{i}", ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                            "--cores", str(self.cfg.cores_per_worker),
                                            "--memory", self.cfg.memory_per_worker, "--webui-port", "0",
                                            "--work-dir", str(self.log_dir / f"work-{i}"), self.master_url])
            while self.alive_workers() < self.cfg.workers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.alive_workers()}/{self.cfg.workers} Spark workers registered in "
                                       f"{self.cfg.start_timeout_s:.0f} s; logs in {self.log_dir}")
                time.sleep(0.5)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for p in reversed(self.procs):  # workers first, then the master
            p.stop()
        self.procs.clear()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with StandaloneSparkCluster(SparkClusterConfig(workers=args.workers)) as c:
        print(f"OXY_SPARK_MASTER={c.master_url}  (master UI http://127.0.0.1:{c.ui_port}; logs {c.log_dir})",
              flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
