"""Shared fixtures: an isolated work dir, one local Spark session, a datasets path."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_WORK = Path(tempfile.mkdtemp(prefix="oxy-test-"))
os.environ["OXY_HOME"] = str(_WORK)
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_WORK / 'mlflow.db'}"
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLCONFIGDIR", str(_WORK / "mpl"))


@pytest.fixture(scope="session")
def work_dir() -> Path:
    yield _WORK
    shutil.rmtree(_WORK, ignore_errors=True)


@pytest.fixture(scope="session")
def spark():
    from oxy_dagster.spark import SparkConfig, get_spark

    return get_spark(SparkConfig(master="local[2]", shuffle_partitions=4, driver_memory="2g"))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    from oxy_dagster.paths import datasets_dir

    return datasets_dir()


