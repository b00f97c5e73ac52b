"""``ablation_report``: the seed's Tables 5, 6, 7, 9 and a scale slice, on the selected SID version."""

import dagster as dg

from oxy_dagster.io import write_text
from oxy_dagster.model.ablation import AblationConfig, ablation_markdown, run_ablations, save
from oxy_dagster.paths import DataPaths

from ..config import AblationParams, build
from ..resources import DatasetResource, MlflowResource
from .pretrain import codebook_dep


def ablation_assets(sid_version: str) -> list[dg.AssetsDefinition]:
    @dg.asset(group_name="ablation", compute_kind="torch", deps=["training_samples", codebook_dep(sid_version)])
    def ablation_report(context: dg.AssetExecutionContext, config: AblationParams, dataset: DatasetResource,
                        paths: dg.ResourceParam[DataPaths], mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
        """Every distinct configuration trains once (same seed, data and steps); one comparison table."""
        acfg = build(AblationConfig, config, sid_version=sid_version)
        with mlflow_tracking.run(context, "ablation", f"ablations-{dataset.name}",
                                 {"sid_version": sid_version, **config.model_dump()}) as run:
            result = run_ablations(paths, acfg, log=lambda row: context.log.info(str(row)))
            md = ablation_markdown(result)
            out = paths.reports / "ablations.json"
            save(result, out)
            run.artifact(out, "path")
            run.artifact(write_text(paths.reports / "ablations.md", md))
        return run.result(table=dg.MetadataValue.md(md), sid_version=sid_version)

    return [ablation_report]
