"""Spark processing assets: leave-one-out splits, Swing pairs, training samples, dataset stats."""

import dagster as dg

from oxy_dagster.data.pipeline import build_samples_table, build_splits, build_stats, build_swing
from oxy_dagster.data.samples import SampleConfig
from oxy_dagster.data.swing import SwingConfig
from oxy_dagster.paths import DataPaths

from ..config import SampleParams, SwingParams, build
from ..resources import DatasetResource, MlflowResource, SparkResource


@dg.asset(group_name="data", deps=["events"], compute_kind="pyspark")
def loo_splits(paths: dg.ResourceParam[DataPaths], spark: SparkResource) -> dg.MaterializeResult:
    """Funnels collapsed into interactions; last = test, second-to-last = valid (TIGER leave-one-out)."""
    counts = build_splits(spark.session(), paths)
    return dg.MaterializeResult(metadata={**counts, "path": dg.MetadataValue.path(str(paths.splits))})


@dg.asset(group_name="data", deps=["loo_splits"], compute_kind="pyspark")
def swing_pairs(config: SwingParams, paths: dg.ResourceParam[DataPaths], spark: SparkResource) -> dg.MaterializeResult:
    """Swing item-to-item scores on train interactions, top-k neighbours per item."""
    out = build_swing(spark.session(), paths, build(SwingConfig, config))
    return dg.MaterializeResult(metadata={**out, "path": dg.MetadataValue.path(str(paths.swing))})


@dg.asset(group_name="data", deps=["loo_splits", "users"], compute_kind="pyspark")
def training_samples(config: SampleParams, paths: dg.ResourceParam[DataPaths],
                     spark: SparkResource) -> dg.MaterializeResult:
    """Multi-scenario samples (seed Table 1): scenario, trigger, instruction source, histories, target."""
    out = build_samples_table(spark.session(), paths, build(SampleConfig, config))
    return dg.MaterializeResult(metadata={"samples": out.pop("samples"),
                                          "by_split_scenario_source": dg.MetadataValue.json(out),
                                          "path": dg.MetadataValue.path(str(paths.samples))})


@dg.asset(group_name="data", deps=["loo_splits", "items", "users", "events"], compute_kind="pyspark")
def dataset_stats(context: dg.AssetExecutionContext, dataset: DatasetResource, paths: dg.ResourceParam[DataPaths],
                  spark: SparkResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """Counts, sequence-length quantiles, scenario and behaviour mix, with an overview plot."""
    with mlflow_tracking.run(context, "data", f"stats-{dataset.name}", {"dataset": dataset.name}) as run:
        stats, png = build_stats(spark.session(), paths)
        run.metrics(stats)
        run.plot("overview", png)
        run.artifact(paths.reports / "stats.json", "report")
    return run.result()
