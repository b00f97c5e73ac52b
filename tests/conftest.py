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




@pytest.fixture(scope="session")
def redis_url():
    """A real redis-server on a free loopback port (installed by .ci/run with apt), stopped by its PID."""
    from oxy_dagster.net import local_redis

    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("OXY_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
        pytest.skip("redis-server is not installed")
    with local_redis(exe) as url:
        yield url


@pytest.fixture(scope="session")
def local_llm():
    """The embedded default LLM for real: llama.cpp server on the packaged SmolLM2-135M GGUF."""
    from oxy_dagster.reasoning.server import LocalLLMServer

    with LocalLLMServer(n_threads=2, log_path=_WORK / "llama-server.log") as server:
        yield server


@pytest.fixture
def clean_redis(redis_url):
    """The session's Redis server, emptied for this test (tests share one server)."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return redis_url
