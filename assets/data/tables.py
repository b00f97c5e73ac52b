"""Raw and validated tables (items, users, events); each table can be materialized alone."""

import dagster as dg

from oxy_dagster.data.contract import ValidationPolicy
from oxy_dagster.data.pipeline import build_raw, build_validated, quarantined_lines
from oxy_dagster.data.sources import QUARANTINE
from oxy_dagster.data.validate import TABLE_ORDER
from oxy_dagster.paths import DataPaths

from ..resources import DatasetResource, MlflowResource, SparkResource


def _selected(context: dg.AssetExecutionContext, prefix: str = "") -> list[str]:
    keys = {k.to_user_string() for k in context.selected_asset_keys}
    return [t for t in TABLE_ORDER if f"{prefix}{t}" in keys]


@dg.multi_asset(
    specs=[dg.AssetSpec(f"raw_{t}", group_name="data", skippable=True,
                        description=f"raw {t} table as the source delivers it") for t in TABLE_ORDER],
    compute_kind="python", can_subset=True,
)
def raw_tables(context: dg.AssetExecutionContext, dataset: DatasetResource, paths: dg.ResourceParam[DataPaths]):
    """Generate (synthetic) or convert (public datasets) the raw tables; a shop's own files are used as they are.

    The source delivers the three tables together, so a subset still writes all three (cheap) and reports its own.
    """
    raw = build_raw(dataset.config(), paths)
    bad = quarantined_lines(raw)  # lines of the source files an adapter could not read: counted, kept
    if len(bad):
        context.log.warning(f"{len(bad)} malformed line(s) quarantined in {raw[QUARANTINE]}: "
                            + "; ".join(f"{r.source_file} line {r.line}: {r.reason}" for r in bad.head(3).itertuples()))
    for t in _selected(context, "raw_"):
        where = dg.MetadataValue.path(raw[t]) if t in raw else "absent: the source has none (optional table)"
        yield dg.MaterializeResult(asset_key=f"raw_{t}", metadata={
            "path": where, "dataset": dataset.name, "quarantined_source_lines": len(bad)})


@dg.multi_asset(
    specs=[dg.AssetSpec(t, group_name="data", skippable=True,
                        deps=[f"raw_{t}"] + (["items", "users"] if t in ("events", "impressions") else []),
                        description=f"validated {t}: typed parquet, bad rows quarantined with reasons")
           for t in TABLE_ORDER],
    compute_kind="pyspark", can_subset=True,
)
def validated_tables(context: dg.AssetExecutionContext, dataset: DatasetResource, paths: dg.ResourceParam[DataPaths],
                     spark: SparkResource, mlflow_tracking: MlflowResource):
    """Validate against the data contract; fail only past ``max_bad_fraction`` bad rows per table."""
    tables = tuple(_selected(context))
    policy = ValidationPolicy(max_bad_fraction=dataset.max_bad_fraction)
    with mlflow_tracking.run(context, "data", f"validate-{dataset.name}",
                             {"dataset": dataset.name, "max_bad_fraction": policy.max_bad_fraction,
                              "tables": ",".join(tables)}) as run:
        summary = build_validated(spark.session(), paths, policy, tables)
        for t, s in summary.items():
            run.metrics({f"{t}_rows_good": s["rows_good"], f"{t}_rows_bad": s["rows_bad"]}, to_metadata=False)
        run.dict(summary, "validation_summary.json")
    for t in tables:
        s = summary[t]
        yield dg.MaterializeResult(asset_key=t, metadata={
            "rows": s["rows_good"], "quarantined_rows": s["rows_bad"], "bad_fraction": s["bad_fraction"],
            "quarantine_reasons": dg.MetadataValue.json(s["reasons"]),
            "quarantine": dg.MetadataValue.path(s["quarantine"]),
            "path": dg.MetadataValue.path(str(paths.table(t))), "dataset": dataset.name})
