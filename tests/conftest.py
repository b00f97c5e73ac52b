"""Shared fixtures: an isolated work dir, one local Spark session, real servers, and the small data and models
many tests use (a tiny code catalogue, tiny sample batches, a tiny trained generator, a small synthetic shop)."""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

_WORK = Path(tempfile.mkdtemp(prefix="oxy-test-"))
os.environ["OXY_HOME"] = str(_WORK)
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_WORK / 'mlflow.db'}"
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLCONFIGDIR", str(_WORK / "mpl"))

TINY_VOCAB = (6, 6, 6, 1)  # the tiny catalogue's code vocabulary: 3 levels of 6 and a collision code of 1
TINY_PROFILE = {"age_band": 7, "gender": 4, "spending_tier": 4, "city": 5}


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


# ----- servers ----------------------------------------------------------------------------------------------
def need_installed(present: bool, what: str, apt: str, required_by: str = "OXY_REQUIRE_SERVERS") -> None:
    """Skip a test whose real server is not installed here; fail it where CI requires the server (``=1``)."""
    if present:
        return
    message = f"{what} is not installed (apt-get install -y {apt})"
    if os.environ.get(required_by) == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def require_installed():
    """``need_installed`` for test modules: ``require_installed(shutil.which("x") is not None, "x", "x-pkg")``."""
    return need_installed


@pytest.fixture(scope="session")
def redis_url():
    """A real redis-server on a free loopback port (installed by .ci/run with apt), stopped by its PID."""
    from oxy_dagster.infra.redis_server import RedisServer

    exe = shutil.which("redis-server")
    need_installed(exe is not None, "redis-server", "redis-server", "OXY_REQUIRE_REDIS")
    with RedisServer(appendonly=False, exe=exe) as server:
        yield server.url


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


# ----- a tiny generator on a hand-made catalogue ------------------------------------------------------------
def tiny_catalogue(seed: int = 0) -> np.ndarray:
    """~150 unique 3-code tuples over vocab 6, plus a zero collision code: (N, 4)."""
    rng = np.random.default_rng(seed)
    codes = np.unique(rng.integers(0, 6, (150, 3)), axis=0)
    return np.concatenate([codes, np.zeros((len(codes), 1), int)], 1)


def tiny_model(codes: np.ndarray, **overrides):
    """The ``tiny`` preset over ``codes`` (seeded; dropout off unless overridden). With a dense head on free output
    vectors (``dense_free_items``) the per-item vectors get seeded random values: they start at zero, and an untrained
    head over zero vectors ranks nothing for a decoding test to read. ``dense_interleave`` is off unless overridden:
    the decoding tests read the beam's log-probability ranking (tests/test_interleave.py tests the merge)."""
    import torch

    from oxy_dagster.model.config import preset
    from oxy_dagster.model.generator import Generator

    torch.manual_seed(0)
    cfg = preset("tiny", **{"code_vocab": TINY_VOCAB, "n_cate": 4, "n_brand": 4, "profile_vocab": TINY_PROFILE,
                            "dropout": 0.0, "dense_interleave": 0.0, **overrides})
    n = len(codes)
    model = Generator(cfg, torch.from_numpy(codes), torch.arange(n) % 3 + 1, torch.arange(n) % 2 + 1,
                      torch.randn(n, 384))
    if cfg.dense_weight > 0 and cfg.dense_free_items:
        with torch.no_grad():
            model.id_emb.weight[:-1] = torch.randn(n, cfg.d_model)
    return model


def tiny_batch(n_items: int, b: int = 4, seed: int = 0) -> dict:
    """Random but valid model inputs for ``b`` users (every trigger / reasoning case appears)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return dict(short_items=torch.randint(0, n_items, (b, 20), generator=g),
                short_behaviors=torch.randint(1, 4, (b, 20), generator=g),
                long_items=torch.randint(0, n_items, (b, 12), generator=g),
                scenario=torch.arange(b) % 5, trigger=torch.where(torch.arange(b) % 2 == 0, n_items, 3),
                has_reasoning=torch.arange(b) % 3 == 0, reasoning=torch.randn(b, 384, generator=g),
                target=torch.randint(0, n_items, (b,), generator=g), weight=torch.ones(b),
                **{f"profile_{k}": torch.randint(0, v, (b,), generator=g) for k, v in TINY_PROFILE.items()})


def toy_data(codes: np.ndarray, n: int = 96):
    """A learnable toy task (the target is the item after the last one in the history) as ``SampleTensors``."""
    import pandas as pd

    from oxy_dagster.model.data import SampleTensors

    b = tiny_batch(len(codes), b=n, seed=3)
    b["target"] = (b["short_items"][:, -1] + 1) % len(codes)
    meta = pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "split": "train", "scenario": "homepage",
                         "target_item_id": "x"})
    return SampleTensors(b, meta, 0, [])


@pytest.fixture(scope="session")
def tiny():
    """The tiny-generator helpers, for tests that build their own variants."""
    from types import SimpleNamespace

    return SimpleNamespace(catalogue=tiny_catalogue, model=tiny_model, batch=tiny_batch, data=toy_data,
                           vocab=TINY_VOCAB)


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory):
    """A tiny generator trained 60 steps on the toy task: (model, codes, data, trie)."""
    from oxy_dagster.model.config import TrainConfig
    from oxy_dagster.model.train import train
    from oxy_dagster.model.trie import CodeTrie

    codes = tiny_catalogue()
    data = toy_data(codes, n=256)
    model = tiny_model(codes)
    train(model, data, np.arange(len(data)), TrainConfig(steps=60, batch_size=64, warmup=5, lr=5e-3, log_every=10,
                                                         engine="torch"), tmp_path_factory.mktemp("tiny") / "ckpt")
    return model.eval(), codes, data, CodeTrie.build(codes, list(TINY_VOCAB))


# ----- a small synthetic shop through the real data and SID stages ------------------------------------------
def synthetic_shop(spark, root: Path, n_users: int, seed: int):
    """The data stage and the shared item text embeddings for a seeded synthetic shop under ``root``."""
    from oxy_dagster.data.pipeline import run_all
    from oxy_dagster.data.sources import DatasetConfig
    from oxy_dagster.data.synthetic import SyntheticConfig
    from oxy_dagster.paths import DataPaths
    from oxy_dagster.sid.build import build_text_embeddings

    run_all(spark, DatasetConfig(kind="synthetic", synthetic=SyntheticConfig(n_users=n_users, seed=seed)), root)
    paths = DataPaths(root)
    build_text_embeddings(paths)
    return paths


@pytest.fixture(scope="session")
def make_shop(spark, tmp_path_factory):
    """``make_shop(n_users, seed)``: a fresh synthetic shop (data stage + text embeddings) in its own folder."""
    return lambda n_users, seed: synthetic_shop(spark, tmp_path_factory.mktemp("shop"), n_users, seed)


@pytest.fixture(scope="session")
def shop(make_shop):
    """400 synthetic users through the data stage, text embeddings and a V1 codebook of width 32."""
    from oxy_dagster.sid.build import build_codebook, build_item_embeddings

    paths = make_shop(n_users=400, seed=9)
    build_item_embeddings(paths, "V1")
    build_codebook(paths, "V1", width=32)
    return paths
