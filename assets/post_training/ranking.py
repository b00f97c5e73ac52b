"""``ranking_model``: the unified multi-scenario ranker (the reward model), beside per-scenario baselines."""

import dagster as dg

from oxy_dagster.paths import DataPaths
from oxy_dagster.ranking.model import RankerConfig
from oxy_dagster.ranking.pipeline import build_rankers, ranker_dir
from oxy_dagster.ranking.report import auc_markdown, plot_auc

from ..config import RankerParams, build
from ..model.pretrain import codebook_dep
from ..resources import DatasetResource, MlflowResource


def ranking_assets(sid_version: str) -> list[dg.AssetsDefinition]:
    @dg.asset(group_name="post_training", compute_kind="torch",
              deps=["impressions", "events", "users", "loo_splits", codebook_dep(sid_version)])
    def ranking_model(context: dg.AssetExecutionContext, config: RankerParams, dataset: DatasetResource,
                      paths: dg.ResourceParam[DataPaths], mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
        """List-wise ranker over every scenario (label packing, block-causal mask); AUC / GAUC vs one pointwise
        model per scenario on the held-out requests (seed Table 8)."""
        from oxy_dagster.sid.text import shared_text_encoder

        cfg = build(RankerConfig, config)
        with mlflow_tracking.run(context, "ranking", f"ranker-{sid_version}-{dataset.name}",
                                 {"sid_version": sid_version, **config.model_dump()}) as run:
            result = build_rankers(paths, sid_version, cfg, shared_text_encoder())
            run.metrics({f"{model}/{scen}/{task}/{m}": v for model in ("unified", "per_scenario")
                         for scen, tasks in result.get(model, {}).items() for task, ms in tasks.items()
                         for m, v in ms.items() if m in ("auc", "gauc") and v is not None}, to_metadata=False)
            out = ranker_dir(paths, sid_version)
            run.plot("auc_by_scenario", plot_auc(result, out / "auc.png"))
            run.artifact(out / "metrics.json", "metrics")
        return run.result(table=dg.MetadataValue.md(auc_markdown(result)), source=result["source"],
                          samples=result["samples"], sid_version=sid_version,
                          model=dg.MetadataValue.path(str(out)))

    return [ranking_model]
