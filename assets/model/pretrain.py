"""``pretrained_checkpoint`` and ``offline_eval`` (seed 2.3 and 4.2-4.3)."""

import json

import dagster as dg
import mlflow

from oxy_dagster.model.pipeline import build_pretrained, model_dir, plot_history
from oxy_dagster.model.pipeline import offline_eval as run_offline_eval
from oxy_dagster.model.train import TrainConfig

from ..metadata import numeric, plot
from ..resources import DatasetResource, MlflowResource, StorageResource


class PretrainParams(dg.Config):
    sid_version: str = "V3"
    size: str = "small"  # tiny | small | small-moe | 0.1B ... 3.0B (seed Table 3)
    steps: int = 600
    batch_size: int = 256
    lr: float = 2e-3
    seed: int = 0
    placement: str = "right_bos"
    components: str = "fused"
    use_igr: bool = True
    q2i_weight: float = 0.1
    engine: str = "deepspeed"  # or "torch"; DeepSpeed runs as a group of one here (see oxy_dagster/model/cli.py)
    zero_stage: int = 1  # ZeRO 0-3; bf16 on GPU, fp32 on CPU
    moe: str = "native"  # MoE presets under DeepSpeed: "deepspeed" splits experts over the ranks (ZeRO 0-2)


class EvalParams(dg.Config):
    sid_version: str = "V3"
    split: str = "test"
    beam: int = 50
    max_rows: int = 0  # 0: every test user
    exclude_history: bool = False  # never recommend an item already in the user's history


@dg.asset(group_name="generator", compute_kind="torch",
          deps=["training_samples", "query_rewrites", *[[v, "sid_codebooks"] for v in ("V1", "V2", "V3", "V4")]])
def pretrained_checkpoint(context: dg.AssetExecutionContext, config: PretrainParams, dataset: DatasetResource,
                          storage: StorageResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """Instruction-following encoder-decoder pre-trained with weighted next-code + Q2I + MoE balance losses."""
    paths = storage.data_paths(dataset.name)
    params = config.model_dump()
    tcfg = TrainConfig(steps=config.steps, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                       engine=config.engine, zero_stage=config.zero_stage, moe=config.moe)
    with mlflow_tracking.run(context, "pretrain", f"pretrain-{config.sid_version}-{dataset.name}", params):
        def log(rec):
            mlflow.log_metrics({k: v for k, v in rec.items() if k != "step"}, step=rec["step"])

        info = build_pretrained(paths, config.sid_version, config.size, tcfg, log=log,
                                placement=config.placement, components=config.components,
                                use_igr=config.use_igr, q2i_weight=config.q2i_weight)
        mlflow.log_dict(info, "info.json")
        out_dir = model_dir(paths, config.sid_version)
        png = plot_history(json.loads((out_dir / "history.json").read_text()), out_dir / "training.png")
        mlflow.log_artifact(str(png))
    return dg.MaterializeResult(metadata={
        "params": info["params"], "train_samples": info["train_samples"], "final_loss": info["final_loss"],
        "sid_version": config.sid_version, "engine": f"{config.engine} (ZeRO {config.zero_stage})",
        "training_curves": plot(png),
        "checkpoints": dg.MetadataValue.path(str(out_dir / "checkpoints"))})


@dg.asset(group_name="generator", compute_kind="torch", deps=["pretrained_checkpoint"])
def offline_eval(context: dg.AssetExecutionContext, config: EvalParams, dataset: DatasetResource,
                 storage: StorageResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """Trie-constrained beam search on the held-out split: Recall/NDCG/HR@5,10,20, per code level, per scenario."""
    paths = storage.data_paths(dataset.name)
    with mlflow_tracking.run(context, "eval", f"eval-{config.sid_version}-{dataset.name}", config.model_dump()):
        result = run_offline_eval(paths, config.sid_version, config.split, config.beam, config.max_rows or None,
                                  config.exclude_history)
        mlflow.log_metrics({k.replace("@", "_at_").replace("/", "_"): v for k, v in numeric(result).items()})
        out = model_dir(paths, config.sid_version) / f"eval_{config.split}.json"
        out.write_text(json.dumps(result, indent=2))
        mlflow.log_artifact(str(out))
    return dg.MaterializeResult(metadata={k.replace("@", "_at_"): v for k, v in numeric(result).items()})
