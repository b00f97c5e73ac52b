"""``rl_checkpoint`` (post-training), ``rl_offline_eval`` (RL next to pretrained) and ``rl_ablation_report``."""

import json

import dagster as dg

from oxy_dagster.io import write_json, write_text
from oxy_dagster.model.config import EvalConfig
from oxy_dagster.model.pipeline import offline_eval
from oxy_dagster.paths import DataPaths
from oxy_dagster.rewards.service import RewardConfig
from oxy_dagster.rl.ablation import RLAblationConfig, rl_markdown, run_rl_ablations
from oxy_dagster.rl.pipeline import plot_rl, post_train
from oxy_dagster.rl.trainer import RLConfig

from ..config import EvalParams, RLAblationParams, RLParams, build
from ..resources import DatasetResource, MlflowResource


def rl_assets(sid_version: str) -> list[dg.AssetsDefinition]:
    @dg.asset(group_name="post_training", compute_kind="torch",
              deps=["pretrained_checkpoint", "ranking_model", "query_rewrites", "user_instructions"])
    def rl_checkpoint(context: dg.AssetExecutionContext, config: RLParams, dataset: DatasetResource,
                      paths: dg.ResourceParam[DataPaths], mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
        """The pretrained generator post-trained with group rollouts, reward mapping and GRPO / GSPO / SA-GCPO."""
        cfg, rewards = build(RLConfig, config), build(RewardConfig, config)
        out = paths.model(sid_version, "rl")
        with mlflow_tracking.run(context, "post-training", f"rl-{cfg.objective}-{sid_version}-{dataset.name}",
                                 {"sid_version": sid_version, **config.model_dump()}) as run:
            def log(r: dict) -> None:  # every RL step: MLflow metrics and a progress line in the run's log
                run.metrics({k: v for k, v in r.items() if k != "step"}, step=r["step"], to_metadata=False)
                context.log.info(f"RL step {r['step']}/{cfg.steps}: reward {r['reward/total']:.4f}, "
                                 f"loss {r['loss']:.4f}")

            # processes > 1: torchrun ranks in a subprocess, their output lines streamed into this run's log
            info = post_train(paths, sid_version, cfg, out_dir=out, reward_cfg=rewards, log=log,
                              echo=context.log.debug)
            history = json.loads((out / "history.json").read_text())
            run.plot("reward_and_hr", plot_rl(history, out / "rl.png"))
            run.dict(info, "info.json")
        last = history[-1] if history else {}
        return run.result(objective=cfg.objective, steps=info["steps"], processes=cfg.processes,
                          train_wall_s=info["train_wall_s"],
                          final_reward=last.get("reward/total"), target_reward=last.get("reward/target"),
                          valid_hr_at_10=last.get("valid_hr@10"), sid_version=sid_version,
                          checkpoints=dg.MetadataValue.path(str(out / "checkpoints")))

    @dg.asset(group_name="post_training", compute_kind="torch", deps=[rl_checkpoint, "offline_eval"])
    def rl_offline_eval(context: dg.AssetExecutionContext, config: EvalParams, dataset: DatasetResource,
                        paths: dg.ResourceParam[DataPaths], mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
        """The RL checkpoint and the pretrained one on the same held-out users with the same beam."""
        ecfg = build(EvalConfig, config)
        with mlflow_tracking.run(context, "eval", f"eval-rl-vs-pretrained-{sid_version}-{dataset.name}",
                                 {"sid_version": sid_version, **config.model_dump()}) as run:
            both = {name: offline_eval(paths, sid_version, ecfg, paths.model(sid_version, name))
                    for name in ("pretrained", "rl")}
            keys = ("hr@1", "hr@10", "recall@10", "ndcg@10")
            figures = {f"{name}/{k}": r[k] for name, r in both.items() for k in keys}
            figures.update({f"delta/{k}": both["rl"][k] - both["pretrained"][k] for k in keys})
            run.metrics(figures)
            run.artifact(write_json(paths.model(sid_version, "rl") / f"eval_{ecfg.split}_vs_pretrained.json", both))
        return run.result(evaluated=both["rl"]["evaluated"], invalid_items=both["rl"]["invalid_items"])

    @dg.asset(group_name="rl_ablation", compute_kind="torch", deps=["pretrained_checkpoint", "ranking_model"])
    def rl_ablation_report(context: dg.AssetExecutionContext, config: RLAblationParams, dataset: DatasetResource,
                           paths: dg.ResourceParam[DataPaths],
                           mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
        """Seed Table 10 (GRPO / GSPO / SA-GCPO), Table 11 (tau grid) and Figure 7 (synthetic share)."""
        acfg, base = build(RLAblationConfig, config), build(RLConfig, config)
        with mlflow_tracking.run(context, "ablation", f"rl-ablations-{sid_version}-{dataset.name}",
                                 {"sid_version": sid_version, **config.model_dump()}) as run:
            result = run_rl_ablations(paths, sid_version, base, acfg, paths.models / "rl-ablations",
                                      log=lambda key, row: context.log.info(f"{key}: {row}"))
            md = rl_markdown(result)
            run.artifact(write_json(paths.reports / "rl_ablations.json", result), "path")
            run.artifact(write_text(paths.reports / "rl_ablations.md", md))
        return run.result(table=dg.MetadataValue.md(md), sid_version=sid_version)

    return [rl_checkpoint, rl_offline_eval, rl_ablation_report]
