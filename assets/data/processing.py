"""Spark processing assets: leave-one-out splits, Swing pairs, training samples, dataset stats."""


import dagster as dg
import mlflow

from oxy_dagster.data.pipeline import build_samples_table, build_splits, build_stats, build_swing
from oxy_dagster.data.samples import SampleConfig
from oxy_dagster.data.swing import SwingConfig

from ..metadata import numeric, plot
from ..resources import DatasetResource, MlflowResource, SparkResource, StorageResource


class SwingParams(dg.Config):
    alpha: float = 1.0
    user_power: float = 0.5
    max_items_per_user: int = 100
    max_users_per_item: int = 300
    top_k: int = 50


class SampleParams(dg.Config):
    short_len: int = 20
    long_len: int = 256


@dg.asset(group_name="data", deps=["events"], compute_kind="pyspark")
def loo_splits(context: dg.AssetExecutionContext, dataset: DatasetResource, storage: StorageResource,
               spark: SparkResource) -> dg.MaterializeResult:
    """Funnels collapsed into interactions; last = test, second-to-last = valid (TIGER leave-one-out)."""
    paths = storage.data_paths(dataset.name)
    counts = build_splits(spark.session(), paths)
    return dg.MaterializeResult(metadata={**counts, "path": dg.MetadataValue.path(str(paths.splits))})


@dg.asset(group_name="data", deps=["loo_splits"], compute_kind="pyspark")
def swing_pairs(context: dg.AssetExecutionContext, config: SwingParams, dataset: DatasetResource,
                storage: StorageResource, spark: SparkResource) -> dg.MaterializeResult:
    """Swing item-to-item scores on train interactions, top-k neighbours per item."""
    paths = storage.data_paths(dataset.name)
    out = build_swing(spark.session(), paths, SwingConfig(**config.model_dump()))
    return dg.MaterializeResult(metadata={**out, "path": dg.MetadataValue.path(str(paths.swing))})


@dg.asset(group_name="data", deps=["loo_splits", "users"], compute_kind="pyspark")
def training_samples(context: dg.AssetExecutionContext, config: SampleParams, dataset: DatasetResource,
                     storage: StorageResource, spark: SparkResource) -> dg.MaterializeResult:
    """Multi-scenario samples (seed Table 1): scenario, trigger, instruction source, histories, target."""
    paths = storage.data_paths(dataset.name)
    out = build_samples_table(spark.session(), paths, SampleConfig(**config.model_dump()))
    return dg.MaterializeResult(metadata={"samples": out.pop("samples"),
                                          "by_split_scenario_source": dg.MetadataValue.json(out),
                                          "path": dg.MetadataValue.path(str(paths.samples))})


@dg.asset(group_name="data", deps=["loo_splits", "items", "users", "events"], compute_kind="pyspark")
def dataset_stats(context: dg.AssetExecutionContext, dataset: DatasetResource, storage: StorageResource,
                  spark: SparkResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """Counts, sequence-length quantiles, scenario and behaviour mix, with an overview plot."""
    paths = storage.data_paths(dataset.name)
    with mlflow_tracking.run(context, "data", f"stats-{dataset.name}", {"dataset": dataset.name}):
        stats, png = build_stats(spark.session(), paths)
        mlflow.log_metrics(numeric(stats))
        mlflow.log_artifact(str(png))
        mlflow.log_artifact(str(paths.reports / "stats.json"))
    return dg.MaterializeResult(metadata={**numeric(stats), "overview": plot(png),
                                          "report": dg.MetadataValue.path(str(paths.reports))})
