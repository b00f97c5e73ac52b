"""Resources per environment, chosen in this one place by ``OXY_ENV`` (local | production).

local (default): Spark local[*], an MLflow SQLite store and all artifacts in the
project's work dir (``OXY_HOME``, default ``.oxy/``); the embedded llama.cpp LLM,
an SQLite instruction store and a JSON-lines event log. Optional overrides come
from the environment (``OXY_SPARK_MASTER``, ``OXY_LLM_BASE_URL``, ...) with defaults.

production: every setting is a ``dg.EnvVar`` left unresolved, so the UI shows
which values come from the environment and a missing variable fails the launch
with its name: ``OXY_SPARK_MASTER``, ``MLFLOW_TRACKING_URI``, ``OXY_STORAGE_ROOT``,
``OXY_LLM_BASE_URL``, ``OXY_LLM_MODEL``, ``OXY_LLM_API_KEY``, ``OXY_REDIS_URL``.

Either way ``OXY_DATASET`` (synthetic | beauty | movielens100k | amazon2014raw)
and ``OXY_DATASET_PATH`` pick the data, here and nowhere else.
"""

from __future__ import annotations

import os

import dagster as dg

from assets.resources import (
    DatasetResource,
    EventSourceResource,
    InstructionStoreResource,
    LLMResource,
    MlflowResource,
    SparkResource,
    data_paths,
)
from oxy_dagster.paths import default_mlflow_uri, work_dir


def dataset_from_env() -> DatasetResource:
    return DatasetResource(kind=os.environ.get("OXY_DATASET", "synthetic"),
                           path=os.environ.get("OXY_DATASET_PATH") or None,
                           category=os.environ.get("OXY_AMAZON_CATEGORY", "Beauty"),
                           n_users=int(os.environ.get("OXY_SYNTHETIC_USERS", "2000")))


def spark_master_from_env() -> str:
    """``OXY_SPARK_MASTER`` (or the older ``SPARK_MASTER``): e.g. ``spark://127.0.0.1:7077``; default local[*]."""
    return os.environ.get("OXY_SPARK_MASTER") or os.environ.get("SPARK_MASTER") or "local[*]"


def resources_for(env: str | None = None, dataset: DatasetResource | None = None) -> dict:
    """The resource set of ``env``; ``dataset`` overrides the dataset chosen by the environment."""
    env = env or os.environ.get("OXY_ENV", "local")
    dataset = dataset or dataset_from_env()
    if env == "local":
        return {
            "spark": SparkResource(master=spark_master_from_env()),
            "paths": data_paths.configured({"root": str(work_dir())}),
            "mlflow_tracking": MlflowResource(tracking_uri=default_mlflow_uri()),
            "dataset": dataset,
            # empty base_url: the embedded llama.cpp server; OXY_LLM_BASE_URL points at any other endpoint
            "llm": LLMResource(base_url=os.environ.get("OXY_LLM_BASE_URL", ""),
                               model=os.environ.get("OXY_LLM_MODEL", ""), gguf_path=os.environ.get("OXY_LLM_GGUF", "")),
            "instruction_store": InstructionStoreResource(url=os.environ.get("OXY_INSTRUCTION_STORE", "")),
            "event_source": EventSourceResource(url=os.environ.get("OXY_EVENT_SOURCE", "")),
        }
    if env == "production":
        return {
            "spark": SparkResource(master=dg.EnvVar("OXY_SPARK_MASTER"), driver_memory="8g", shuffle_partitions=200),
            "paths": data_paths.configured({"root": {"env": "OXY_STORAGE_ROOT"}}),
            "mlflow_tracking": MlflowResource(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI")),
            "dataset": dataset,
            "llm": LLMResource(base_url=dg.EnvVar("OXY_LLM_BASE_URL"), model=dg.EnvVar("OXY_LLM_MODEL"),
                               api_key=dg.EnvVar("OXY_LLM_API_KEY"), concurrency=8, json_mode="json_schema"),
            "instruction_store": InstructionStoreResource(url=dg.EnvVar("OXY_REDIS_URL")),
            "event_source": EventSourceResource(url=dg.EnvVar("OXY_REDIS_URL")),
        }
    raise ValueError(f"OXY_ENV must be 'local' or 'production', not {env!r}")
