"""``pretrained_checkpoint`` and ``offline_eval`` (seed 2.3 and 4.2-4.3), built for one selected SID version.

The version is chosen once, in ``jobs/definitions.py``; the checkpoint depends on that
partition of ``sid_codebooks`` only, and everything downstream inherits it.
"""

import json

import dagster as dg

from oxy_dagster.io import write_json
from oxy_dagster.model.config import EvalConfig, ModelChoice, TrainConfig
from oxy_dagster.model.pipeline import build_pretrained, plot_history
from oxy_dagster.model.pipeline import offline_eval as run_offline_eval
from oxy_dagster.paths import DataPaths

from ..config import EvalParams, PretrainParams, build
from ..resources import DatasetResource, MlflowResource


def codebook_dep(sid_version: str) -> dg.AssetDep:
    """The one partition of ``sid_codebooks`` a generator trains on."""
    return dg.AssetDep("sid_codebooks", partition_mapping=dg.SpecificPartitionsPartitionMapping([sid_version]))


def generator_assets(sid_version: str) -> list[dg.AssetsDefinition]:
    @dg.asset(group_name="generator", compute_kind="torch",
              deps=["training_samples", "query_rewrites", codebook_dep(sid_version)])
    def pretrained_checkpoint(context: dg.AssetExecutionContext, config: PretrainParams, dataset: DatasetResource,
                              paths: dg.ResourceParam[DataPaths],
                              mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
        """Instruction-following encoder-decoder pre-trained with weighted next-code + Q2I + MoE balance losses."""
        choice, tcfg = build(ModelChoice, config), build(TrainConfig, config)
        params = {"sid_version": sid_version, **config.model_dump()}
        with mlflow_tracking.run(context, "pretrain", f"pretrain-{sid_version}-{dataset.name}", params) as run:
            def log(rec: dict) -> None:  # every logged step: MLflow metrics and a progress line in the run's log
                run.metrics({k: v for k, v in rec.items() if k != "step"}, step=rec["step"], to_metadata=False)
                context.log.info(f"step {rec['step']}/{tcfg.steps}: loss {rec['loss']:.4f}, "
                                 f"{rec.get('samples_per_s', 0):.0f} samples/s")

            # processes > 1: torchrun ranks in a subprocess; their output lines arrive here as they are printed
            info = build_pretrained(paths, sid_version, choice.size, tcfg, log=log, echo=context.log.debug,
                                    **choice.overrides())
            run.dict(info, "info.json")
            out_dir = paths.model(sid_version)
            run.plot("training_curves", plot_history(json.loads((out_dir / "history.json").read_text()),
                                                     out_dir / "training.png"))
        return run.result(params=info["params"], train_samples=info["train_samples"], final_loss=info["final_loss"],
                          sid_version=sid_version, engine=f"{tcfg.engine} (ZeRO {tcfg.zero_stage})",
                          processes=tcfg.processes,
                          checkpoints=dg.MetadataValue.path(str(out_dir / "checkpoints")))

    @dg.asset(group_name="generator", compute_kind="torch", deps=[pretrained_checkpoint])
    def offline_eval(context: dg.AssetExecutionContext, config: EvalParams, dataset: DatasetResource,
                     paths: dg.ResourceParam[DataPaths], mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
        """Trie-constrained beam search on the held-out split: Recall/NDCG/HR@5,10,20, per code level, per scenario."""
        ecfg = build(EvalConfig, config)
        with mlflow_tracking.run(context, "eval", f"eval-{sid_version}-{dataset.name}",
                                 {"sid_version": sid_version, **config.model_dump()}) as run:
            result = run_offline_eval(paths, sid_version, ecfg)
            run.metrics(result)
            run.artifact(write_json(paths.model(sid_version) / f"eval_{ecfg.split}.json", result))
        return run.result(sid_version=sid_version)

    return [pretrained_checkpoint, offline_eval]
