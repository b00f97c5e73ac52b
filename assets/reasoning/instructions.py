"""Daily slow-thinking assets: STP table, query rewrites, per-user instructions (seed 2.2.3, 3.3, App. B-C)."""

import dagster as dg
import mlflow
import pandas as pd
import pyarrow.parquet as pq

from oxy_dagster.io import write_pandas
from oxy_dagster.reasoning.intents import IntentConfig, query_rewrites as rewrite_queries
from oxy_dagster.reasoning.intents import refresh_user_instructions
from oxy_dagster.reasoning.stp import STPConfig, build_stp_table

from ..resources import DatasetResource, InstructionStoreResource, LLMResource, MlflowResource, StorageResource


def _read(paths, name: str, columns=None) -> pd.DataFrame:
    return pq.read_table(paths.table(name), columns=columns).to_pandas()


def _finish(context, llm, stage_metrics: dict) -> dict:
    stats = {f"llm_{k}": v for k, v in llm.stats.as_dict().items()}
    mlflow.log_metrics({**stats, **{k: float(v) for k, v in stage_metrics.items() if isinstance(v, (int, float))}})
    context.log.info(f"LLM: {stats}")
    return {**stage_metrics, **stats, "llm_model": llm.cfg.model}


class STPParams(dg.Config):
    max_triples: int = 12
    max_pairs: int = 24


@dg.asset(group_name="reasoning", deps=["events", "users"], compute_kind="llm")
def stp_instruction_table(context: dg.AssetExecutionContext, config: STPParams, dataset: DatasetResource,
                          storage: StorageResource, llm: LLMResource,
                          mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """(time bucket x location x persona) -> instruction + reason, with coarser back-off keys."""
    paths = storage.data_paths(dataset.name)
    events = _read(paths, "events", ["user_id", "timestamp"])
    users = _read(paths, "users", ["user_id", "age_band", "gender", "city", "spending_tier"])
    with mlflow_tracking.run(context, "reasoning", f"stp-{dataset.name}", config.model_dump()), llm.session() as c:
        table, failed = build_stp_table(events, users, c, STPConfig(config.max_triples, config.max_pairs))
        path = write_pandas(table, paths.root / "reasoning" / "stp_instructions.parquet")
        meta = _finish(context, c, {"keys": len(table), "failed": failed,
                                    **{f"level{lvl}_keys": int((table.level == lvl).sum()) for lvl in (1, 2, 3)}})
    preview = table[["key", "instruction", "reason"]].head(8).to_markdown(index=False) if len(table) else "(empty)"
    return dg.MaterializeResult(metadata={**meta, "path": dg.MetadataValue.path(str(path)),
                                          "preview": dg.MetadataValue.md(preview)})


class RewriteParams(dg.Config):
    max_queries: int = 20


@dg.asset(group_name="reasoning", deps=["events"], compute_kind="llm")
def query_rewrites(context: dg.AssetExecutionContext, config: RewriteParams, dataset: DatasetResource,
                   storage: StorageResource, llm: LLMResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """Noisy / truncated search queries -> intent-aligned instructions; search samples train on them."""
    paths = storage.data_paths(dataset.name)
    events = _read(paths, "events", ["query"])
    with mlflow_tracking.run(context, "reasoning", f"query-rewrite-{dataset.name}", config.model_dump()), \
            llm.session() as c:
        table, failed = rewrite_queries(events, c, config.max_queries)
        path = write_pandas(table, paths.root / "reasoning" / "query_rewrites.parquet")
        share = float(table["count"].sum() / max(1, events["query"].notna().sum()))
        meta = _finish(context, c, {"rewritten": len(table), "failed": failed, "search_event_share": share})
    preview = table[["query", "rewrite"]].head(8).to_markdown(index=False) if len(table) else "(empty)"
    return dg.MaterializeResult(metadata={**meta, "path": dg.MetadataValue.path(str(path)),
                                          "preview": dg.MetadataValue.md(preview)})


class IntentParams(dg.Config):
    max_users: int = 20  # 0: every active user
    active_days: int = 7
    long_days: int = 90
    short_hours: int = 24


@dg.asset(group_name="reasoning", deps=["events", "items", "users"], compute_kind="llm")
def user_instructions(context: dg.AssetExecutionContext, config: IntentParams, dataset: DatasetResource,
                      storage: StorageResource, llm: LLMResource, instruction_store: InstructionStoreResource,
                      mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """Per active user: 90-day + 24-hour narratives -> instruction + reason -> embedding -> the store."""
    from oxy_dagster.sid.text import shared_text_encoder

    paths = storage.data_paths(dataset.name)
    events = _read(paths, "events", ["user_id", "item_id", "timestamp", "behavior", "query"])
    items = _read(paths, "items", ["item_id", "title", "category_path"])
    users = _read(paths, "users", ["user_id", "age_band", "gender", "city", "spending_tier"])
    cfg = IntentConfig(long_days=config.long_days, short_hours=config.short_hours, active_days=config.active_days,
                       max_users=config.max_users)
    store = instruction_store.open()
    with mlflow_tracking.run(context, "reasoning", f"user-intents-{dataset.name}", config.model_dump()), \
            llm.session() as c:
        stats = refresh_user_instructions(events, items, users, c, store, shared_text_encoder(), cfg)
        meta = _finish(context, c, stats)
    meta["stored_users"] = store.count()
    store.close()
    return dg.MaterializeResult(metadata=meta)
