"""``ablation_report``: the seed's Tables 5, 6, 7, 9 and a scale slice, rerun on the configured dataset."""

import dagster as dg
import mlflow

from oxy_dagster.model.ablation import AblationConfig, ablation_markdown, run_ablations, save

from ..resources import DatasetResource, MlflowResource, StorageResource


class AblationParams(dg.Config):
    sid_version: str = "V3"
    steps: int = 250
    beam: int = 30
    eval_rows: int = 1000


@dg.asset(group_name="ablation", compute_kind="torch", deps=["training_samples", ["V3", "sid_codebooks"]])
def ablation_report(context: dg.AssetExecutionContext, config: AblationParams, dataset: DatasetResource,
                    storage: StorageResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """Every distinct configuration trains once (same seed, data and steps); one comparison table."""
    paths = storage.data_paths(dataset.name)
    acfg = AblationConfig(sid_version=config.sid_version, steps=config.steps, beam=config.beam,
                          eval_rows=config.eval_rows)
    with mlflow_tracking.run(context, "ablation", f"ablations-{dataset.name}", config.model_dump()):
        result = run_ablations(paths, acfg, log=lambda row: context.log.info(str(row)))
        md = ablation_markdown(result)
        out = paths.reports / "ablations.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        save(result, out)
        (paths.reports / "ablations.md").write_text(md)
        mlflow.log_artifact(str(out))
        mlflow.log_artifact(str(paths.reports / "ablations.md"))
    return dg.MaterializeResult(metadata={"table": dg.MetadataValue.md(md), "path": dg.MetadataValue.path(str(out))})
