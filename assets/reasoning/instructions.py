"""Daily slow-thinking assets: STP table, query rewrites, per-user instructions (seed 2.2.3, 3.3, App. B-C)."""

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from oxy_dagster.io import write_parquet
from oxy_dagster.paths import DataPaths
from oxy_dagster.reasoning.intents import IntentConfig, RewriteConfig, refresh_user_instructions
from oxy_dagster.reasoning.intents import query_rewrites as rewrite_queries
from oxy_dagster.reasoning.stp import STPConfig, build_stp_table

from ..config import IntentParams, RewriteParams, STPParams, build
from ..resources import DatasetResource, InstructionStoreResource, LLMResource, MlflowResource


def _read(paths: DataPaths, name: str, columns=None) -> pd.DataFrame:
    return pq.read_table(paths.table(name), columns=columns).to_pandas()


def _finish(context, run, llm, stage_metrics: dict) -> None:
    """Stage figures and the LLM's counters (requests, failures, tokens) into MLflow and the metadata."""
    stats = {f"llm_{k}": v for k, v in llm.stats.as_dict().items()}
    run.metrics({**stats, **stage_metrics})
    run.meta(llm_model=llm.cfg.model, **{k: v for k, v in stage_metrics.items() if isinstance(v, str)})
    context.log.info(f"LLM: {stats}")


def _preview(table: pd.DataFrame, columns: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md(table[columns].head(8).to_markdown(index=False) if len(table) else "(empty)")


@dg.asset(group_name="reasoning", deps=["events", "users"], compute_kind="llm")
def stp_instruction_table(context: dg.AssetExecutionContext, config: STPParams, dataset: DatasetResource,
                          paths: dg.ResourceParam[DataPaths], llm: LLMResource,
                          mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """(time bucket x location x persona) -> instruction + reason, with coarser back-off keys."""
    events = _read(paths, "events", ["user_id", "timestamp"])
    users = _read(paths, "users", ["user_id", "age_band", "gender", "city", "spending_tier"])
    with mlflow_tracking.run(context, "reasoning", f"stp-{dataset.name}", config.model_dump()) as run, \
            llm.session() as c:
        table, failed = build_stp_table(events, users, c, build(STPConfig, config))
        path = write_parquet(table, paths.reasoning / "stp_instructions.parquet")
        _finish(context, run, c, {"keys": len(table), "failed": failed,
                                  **{f"level{lvl}_keys": int((table.level == lvl).sum()) for lvl in (1, 2, 3)}})
    return run.result(path=dg.MetadataValue.path(str(path)), preview=_preview(table, ["key", "instruction", "reason"]))


@dg.asset(group_name="reasoning", deps=["events"], compute_kind="llm")
def query_rewrites(context: dg.AssetExecutionContext, config: RewriteParams, dataset: DatasetResource,
                   paths: dg.ResourceParam[DataPaths], llm: LLMResource,
                   mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """Noisy / truncated search queries -> intent-aligned instructions; search samples train on them."""
    events = _read(paths, "events", ["query"])
    with mlflow_tracking.run(context, "reasoning", f"query-rewrite-{dataset.name}", config.model_dump()) as run, \
            llm.session() as c:
        table, failed = rewrite_queries(events, c, build(RewriteConfig, config).max_queries)
        path = write_parquet(table, paths.reasoning / "query_rewrites.parquet")
        share = float(table["count"].sum() / max(1, events["query"].notna().sum()))
        _finish(context, run, c, {"rewritten": len(table), "failed": failed, "search_event_share": share})
    return run.result(path=dg.MetadataValue.path(str(path)), preview=_preview(table, ["query", "rewrite"]))


@dg.asset(group_name="reasoning", deps=["events", "items", "users"], compute_kind="llm")
def user_instructions(context: dg.AssetExecutionContext, config: IntentParams, dataset: DatasetResource,
                      paths: dg.ResourceParam[DataPaths], llm: LLMResource,
                      instruction_store: InstructionStoreResource,
                      mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """Per active user: 90-day + 24-hour narratives -> instruction + reason -> embedding -> the store."""
    from oxy_dagster.sid.text import shared_text_encoder

    events = _read(paths, "events", ["user_id", "item_id", "timestamp", "behavior", "query"])
    items = _read(paths, "items", ["item_id", "title", "category_path"])
    users = _read(paths, "users", ["user_id", "age_band", "gender", "city", "spending_tier"])
    store = instruction_store.open()
    try:
        with mlflow_tracking.run(context, "reasoning", f"user-intents-{dataset.name}", config.model_dump()) as run, \
                llm.session() as c:
            stats = refresh_user_instructions(events, items, users, c, store, shared_text_encoder(),
                                              build(IntentConfig, config))
            _finish(context, run, c, stats)
        return run.result(stored_users=store.count())
    finally:
        store.close()
