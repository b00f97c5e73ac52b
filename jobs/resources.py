"""Resources per environment, chosen in this one place by ``OXY_ENV`` (local | production).

local (default): Spark local[*], an MLflow SQLite store and all artifacts in the
project's work dir (``OXY_HOME``, default ``.oxy/``), the synthetic dataset.
production: a Spark master, a remote MLflow server and a shared storage root,
all taken from the environment (``SPARK_MASTER``, ``MLFLOW_TRACKING_URI``,
``OXY_STORAGE_ROOT``).

Slow thinking: local uses the embedded llama.cpp server (or ``OXY_LLM_BASE_URL``),
an SQLite instruction store and a JSON-lines event log under the work dir;
production takes ``OXY_LLM_BASE_URL`` / ``OXY_LLM_MODEL`` / ``OXY_LLM_API_KEY``
and ``OXY_REDIS_URL`` (store + event stream).

Either way ``OXY_DATASET`` (synthetic | beauty | movielens100k | amazon2014raw)
and ``OXY_DATASET_PATH`` pick the data.
"""

from __future__ import annotations

import os

import dagster as dg

from assets.resources import (DatasetResource, EventSourceResource, InstructionStoreResource, LLMResource,
                              MlflowResource, SparkResource, StorageResource)
from oxy_dagster.paths import default_mlflow_uri, work_dir


def _dataset() -> DatasetResource:
    return DatasetResource(kind=os.environ.get("OXY_DATASET", "synthetic"),
                           path=os.environ.get("OXY_DATASET_PATH") or None,
                           category=os.environ.get("OXY_AMAZON_CATEGORY", "Beauty"),
                           n_users=int(os.environ.get("OXY_SYNTHETIC_USERS", "2000")))


def resources_for(env: str | None = None) -> dict:
    env = env or os.environ.get("OXY_ENV", "local")
    if env == "local":
        return {
            "spark": SparkResource(master=os.environ.get("SPARK_MASTER", "local[*]")),
            "storage": StorageResource(root=str(work_dir())),
            "mlflow_tracking": MlflowResource(tracking_uri=default_mlflow_uri()),
            "dataset": _dataset(),
            # empty base_url: the embedded llama.cpp server; OXY_LLM_BASE_URL points at any other endpoint
            "llm": LLMResource(base_url=os.environ.get("OXY_LLM_BASE_URL", ""),
                               model=os.environ.get("OXY_LLM_MODEL", ""), gguf_path=os.environ.get("OXY_LLM_GGUF", "")),
            "instruction_store": InstructionStoreResource(url=os.environ.get("OXY_INSTRUCTION_STORE", "")),
            "event_source": EventSourceResource(url=os.environ.get("OXY_EVENT_SOURCE", "")),
        }
    if env == "production":
        return {
            "spark": SparkResource(master=dg.EnvVar("SPARK_MASTER").get_value(), driver_memory="8g",
                                   shuffle_partitions=200),
            "storage": StorageResource(root=dg.EnvVar("OXY_STORAGE_ROOT").get_value()),
            "mlflow_tracking": MlflowResource(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI").get_value()),
            "dataset": _dataset(),
            "llm": LLMResource(base_url=dg.EnvVar("OXY_LLM_BASE_URL").get_value(),
                               model=dg.EnvVar("OXY_LLM_MODEL").get_value(), api_key=dg.EnvVar("OXY_LLM_API_KEY"),
                               concurrency=8, json_mode="json_schema"),
            "instruction_store": InstructionStoreResource(url=dg.EnvVar("OXY_REDIS_URL").get_value()),
            "event_source": EventSourceResource(url=dg.EnvVar("OXY_REDIS_URL").get_value()),
        }
    raise ValueError(f"OXY_ENV must be 'local' or 'production', not {env!r}")
