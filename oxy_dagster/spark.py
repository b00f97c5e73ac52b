"""One SparkSession per run: local[*] by default, a master URL runs the same code on a cluster.

On a cluster (``spark://``, ``yarn``, ``k8s://``) the executors run this interpreter's Python
(``spark.pyspark.python``) and read and write the same paths as the driver, so the work dir
(``OXY_HOME`` / ``OXY_STORAGE_ROOT``) must be storage every node sees (one machine, NFS, or an object store).
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field

from .paths import work_dir


@dataclass
class SparkConfig:
    master: str = "local[*]"
    app_name: str = "oxyrec"
    driver_memory: str = "4g"
    shuffle_partitions: int = 8
    executor_memory: str = "1g"
    extra_conf: dict[str, str] = field(default_factory=dict)


_SESSION = None


def get_spark(cfg: SparkConfig | None = None):
    """Return the process-wide SparkSession, creating it on first use."""
    global _SESSION
    if _SESSION is not None and _SESSION.sparkContext._jsc is not None:
        return _SESSION
    cfg = cfg or SparkConfig()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    local_dir = os.environ.get("SPARK_LOCAL_DIRS") or tempfile.mkdtemp(prefix="oxy-spark-")
    warehouse = work_dir() / "spark-warehouse"
    builder = (
        SparkSession.builder.master(cfg.master)
        .appName(cfg.app_name)
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.local.dir", local_dir)
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.host", os.environ.get("OXY_SPARK_DRIVER_HOST", "127.0.0.1"))
        .config("spark.jars.ivy", os.path.join(tempfile.gettempdir(), "oxy-ivy"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    # Python workers run this interpreter (the venv's), locally and on every executor.
    builder = builder.config("spark.pyspark.python", os.environ.get("PYSPARK_PYTHON", sys.executable))
    if not cfg.master.startswith("local"):
        builder = builder.config("spark.executor.memory", cfg.executor_memory)
    for k, v in cfg.extra_conf.items():
        builder = builder.config(k, v)
    _SESSION = builder.getOrCreate()
    _SESSION.sparkContext.setLogLevel("ERROR")
    return _SESSION


def stop_spark() -> None:
    global _SESSION
    if _SESSION is not None:
        _SESSION.stop()
        _SESSION = None
