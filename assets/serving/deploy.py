"""``deployed_model``: the generator the service loads, chosen on validation, exported and registered.

Depends on every generator trained on the selected SID version; registers a new version of model
``oxyrec`` in the MLflow registry with alias ``champion`` (what ``python -m oxy_dagster.serving``
loads) and fills the user-history store the service reads. Its asset check serves test users through
the bundle exactly as the service would and compares their top-10 with offline evaluation's.
"""

import dagster as dg

from oxy_dagster.paths import DataPaths
from oxy_dagster.serving.deploy import DeployConfig, candidate_dirs, check_bundle, choose, export, fill_histories
from oxy_dagster.serving.registry import ALIAS, MODEL_NAME, register_bundle

from ..config import DeployParams, build
from ..resources import DatasetResource, InstructionStoreResource, MlflowResource


def serving_assets(sid_version: str, generators: list[str]) -> list:
    @dg.asset(group_name="serving", compute_kind="mlflow", deps=generators,
              check_specs=[dg.AssetCheckSpec("bundle_reproduces_offline_eval", asset="deployed_model",
                                             description="served top-10 == offline_eval's for sampled test users")])
    def deployed_model(context: dg.AssetExecutionContext, config: DeployParams, dataset: DatasetResource,
                       paths: dg.ResourceParam[DataPaths], instruction_store: InstructionStoreResource,
                       mlflow_tracking: MlflowResource):
        """Best generator on the validation split -> self-contained bundle -> MLflow registry (oxyrec@champion)."""
        from oxy_dagster.sid.text import shared_text_encoder

        cfg = build(DeployConfig, config)
        with mlflow_tracking.run(context, "serving", f"deploy-{sid_version}-{dataset.name}",
                                 {"sid_version": sid_version, **config.model_dump()}) as run:
            chosen, figures = choose(paths, sid_version, cfg)
            bundle = paths.models / "deployed" / "bundle"
            export(paths, sid_version, candidate_dirs(paths, sid_version, chosen), bundle,
                   {"chosen": chosen, "choice_figures": figures, "dataset": dataset.name})
            version = register_bundle(bundle, tags={"sid_version": sid_version, "chosen": chosen,
                                                    "dataset": dataset.name})
            run.metrics({f"{name}/{k}": v for name, f in figures.items() for k, v in f.items()})
            store = instruction_store.open()
            try:
                users = fill_histories(store, paths, cfg.history_len)
            finally:
                store.close()
            check = check_bundle(paths, sid_version, candidate_dirs(paths, sid_version, chosen), bundle, cfg.check_rows,
                                 cfg.beam, shared_text_encoder())
            run.metrics(check)
        yield dg.MaterializeResult(metadata={
            **run.metadata, "chosen": chosen, "registered": f"{MODEL_NAME} v{version} (alias {ALIAS})",
            "choice": dg.MetadataValue.json(figures), "bundle": dg.MetadataValue.path(str(bundle)),
            "histories_written": users, "sid_version": sid_version})
        yield dg.AssetCheckResult(check_name="bundle_reproduces_offline_eval",
                                  passed=check["same_top10"] == check["checked_users"] > 0, metadata=check)

    return [deployed_model]
