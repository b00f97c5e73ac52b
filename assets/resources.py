"""Dagster resources, one per external thing: Spark, MLflow, the dataset and its paths, the LLM, stores.

Which values they take per environment (local / production) is decided in one
place, ``jobs/resources.py``.
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from oxy_dagster.data.sources import DatasetConfig
from oxy_dagster.data.synthetic import SyntheticConfig
from oxy_dagster.paths import DataPaths

from .metadata import TrackedRun


class SparkResource(dg.ConfigurableResource):
    """One SparkSession per run process; ``master`` may point at a cluster."""

    master: str = "local[*]"
    driver_memory: str = "4g"
    shuffle_partitions: int = 8

    def session(self):
        from oxy_dagster.spark import SparkConfig, get_spark

        return get_spark(SparkConfig(master=self.master, driver_memory=self.driver_memory,
                                     shuffle_partitions=self.shuffle_partitions))


class DatasetResource(dg.ConfigurableResource):
    """Which dataset feeds the graph: synthetic (default), beauty, amazon5core (any ``category``), movielens100k,
    amazon2014raw, files."""

    kind: str = "synthetic"
    path: str | None = None
    category: str = "Beauty"
    items_file: str | None = None
    users_file: str | None = None
    events_file: str | None = None
    seed: int = 7
    n_users: int = 2000
    max_bad_fraction: float = 0.01

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.category}" if self.kind in ("amazon2014raw", "amazon5core") else self.kind

    def config(self) -> DatasetConfig:
        files = {k: v for k, v in (("items", self.items_file), ("users", self.users_file),
                                   ("events", self.events_file)) if v}
        return DatasetConfig(kind=self.kind, path=self.path, category=self.category, files=files,
                             synthetic=SyntheticConfig(seed=self.seed, n_users=self.n_users),
                             max_bad_fraction=self.max_bad_fraction)


@dg.resource(config_schema={"root": dg.Field(str, description="work dir; the dataset's files live under "
                                                            "<root>/data/<dataset>")},
             required_resource_keys={"dataset"})
def data_paths(init_context) -> DataPaths:
    """Where the chosen dataset's artifacts live: every asset receives this ``DataPaths`` as ``paths``."""
    return DataPaths(Path(init_context.resource_config["root"]) / "data" / init_context.resources.dataset.name)


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking: one experiment per stage, runs tagged with the Dagster run id.

    ``run`` yields a ``TrackedRun``: what it logs to MLflow it also collects as the asset's Dagster metadata.
    """

    tracking_uri: str
    experiment_prefix: str = "oxyrec"

    @contextlib.contextmanager
    def run(self, context: dg.AssetExecutionContext | dg.OpExecutionContext, stage: str, run_name: str,
            params: dict | None = None) -> Iterator[TrackedRun]:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        exp = mlflow.set_experiment(f"{self.experiment_prefix}-{stage}")
        root = context.run.root_run_id or context.run.run_id
        tags = {"dagster_run_id": context.run.run_id, "dagster_root_run_id": root,
                "dagster_job": context.run.job_name or "", "stage": stage}
        _fail_orphans(exp.experiment_id, root, run_name)
        with mlflow.start_run(run_name=run_name, tags=tags) as run:  # an exception marks the run FAILED
            if params:
                mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            yield TrackedRun(run)


def _fail_orphans(experiment_id: str, root_run_id: str, run_name: str) -> None:
    """An earlier attempt of this Dagster run killed outright (SIGKILL, lost node) left its MLflow run RUNNING:
    the retry marks it FAILED before it starts its own."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for r in client.search_runs([experiment_id], f"tags.dagster_root_run_id = '{root_run_id}' and "
                                                 f"attributes.status = 'RUNNING' and "
                                                 f"attributes.run_name = '{run_name}'"):
        client.set_terminated(r.info.run_id, "FAILED")


class LLMResource(dg.ConfigurableResource):
    """The OpenAI-compatible endpoint for slow thinking. Empty ``base_url``: start the embedded local
    llama.cpp server (packaged GGUF, or ``gguf_path``) for the duration of the step."""

    base_url: str = ""
    model: str = ""
    api_key: str = ""  # production: dg.EnvVar("OXY_LLM_API_KEY"); never logged
    timeout_s: float = 120.0
    max_retries: int = 2
    concurrency: int = 1
    json_mode: str = "none"
    gguf_path: str = ""
    n_threads: int = 2
    cache_path: str = ""

    @contextlib.contextmanager
    def session(self):
        from oxy_dagster.paths import work_dir
        from oxy_dagster.reasoning.llm import InstructionLLM, LLMConfig
        from oxy_dagster.reasoning.server import LocalLLMServer

        cfg = LLMConfig(base_url=self.base_url, model=self.model, api_key=self.api_key, timeout_s=self.timeout_s,
                        max_retries=self.max_retries, concurrency=self.concurrency, json_mode=self.json_mode,
                        cache_path=self.cache_path or str(work_dir() / "cache" / "llm_answers.sqlite"))
        if cfg.resolved().base_url:
            yield InstructionLLM(cfg)
            return
        with LocalLLMServer(self.gguf_path or None, n_threads=self.n_threads,
                            log_path=work_dir() / "llama-server.log") as server:
            cfg.base_url = server.base_url
            yield InstructionLLM(cfg)


class InstructionStoreResource(dg.ConfigurableResource):
    """Where user instructions live: ``sqlite:///...`` (embedded default) or ``redis://...``."""

    url: str = ""

    def open(self):
        from oxy_dagster.paths import work_dir
        from oxy_dagster.reasoning.store import make_store

        return make_store(self.url or f"sqlite:///{work_dir() / 'instructions.db'}")


class EventSourceResource(dg.ConfigurableResource):
    """The append-only near-line event source: a local JSON-lines log (default) or ``redis://`` stream."""

    url: str = ""
    window_s: int = 300

    def open(self):
        from oxy_dagster.paths import work_dir
        from oxy_dagster.reasoning.nearline import make_event_source

        return make_event_source(self.url or str(work_dir() / "events" / "nearline.jsonl"))
