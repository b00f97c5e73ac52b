"""``item_embeddings`` and ``sid_codebooks``: one asset each, one static partition per SID version (V1-V4).

The versions are four configurations of one artifact, so the UI shows them side by
side as partitions and any one can be rematerialized alone. A run may cover a range
of versions (single-run backfill policy: the main job builds V1-V4 in one run); each
version's figures are recorded as an observation on its own partition, and the
materialization carries the figures of every version it built, prefixed ``<V>/``.
"""

import json

import dagster as dg
import pyarrow.parquet as pq

from oxy_dagster.paths import DataPaths
from oxy_dagster.sid.build import CodebookConfig, EmbeddingConfig, build_codebook, build_item_embeddings
from oxy_dagster.sid.metrics import plot_load_balance
from oxy_dagster.sid.versions import VERSIONS

from ..config import CodebookParams, EmbeddingParams, build
from ..metadata import numeric, plot
from ..resources import DatasetResource, MlflowResource

SID_VERSIONS = dg.StaticPartitionsDefinition(list(VERSIONS))
_PER_VERSION = dict(partitions_def=SID_VERSIONS, backfill_policy=dg.BackfillPolicy.single_run(), group_name="sid")


def _loss_plot(losses, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from oxy_dagster.io import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(losses)
    ax.set(xlabel="step", ylabel="InfoNCE loss (sum over sources)", title=path.parent.name)
    fig.tight_layout()
    save_figure(fig, path)


def _observe(context: dg.AssetExecutionContext, version: str, figures: dict) -> None:
    context.log_event(dg.AssetObservation(asset_key=context.asset_key, partition=version, metadata=figures))


@dg.asset(compute_kind="torch", deps=["item_text_embeddings", "swing_pairs", "loo_splits"], **_PER_VERSION)
def item_embeddings(context: dg.AssetExecutionContext, config: EmbeddingParams, dataset: DatasetResource,
                    paths: dg.ResourceParam[DataPaths], mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """Per version: fused, contrastively trained item vectors (V1: the frozen text vectors). See VERSIONS."""
    cfg = build(EmbeddingConfig, config)
    meta: dict = {}
    for name in context.partition_keys:
        with mlflow_tracking.run(context, "sid", f"{name}-item_embeddings-{dataset.name}",
                                 {"version": name, "dataset": dataset.name, **config.model_dump()}) as run:
            info = build_item_embeddings(paths, name, seed=cfg.seed, epochs=cfg.epochs or None)
            losses = json.loads((paths.sid / name / "losses.json").read_text())
            for step, loss in enumerate(losses):
                run.metrics({"loss": loss}, step=step, to_metadata=False)
            figures = {**numeric(info), "version": name}
            if losses:
                png = paths.sid / name / "loss.png"
                _loss_plot(losses, png)
                run.plot("loss_curve", png)
                figures["loss_curve"] = run.metadata.pop("loss_curve")
            run.dict(info, "info.json")
        _observe(context, name, figures)
        meta.update({f"{name}/{k}": v for k, v in figures.items() if k != "loss_curve"})
    return dg.MaterializeResult(metadata=meta)


@dg.asset(compute_kind="faiss", deps=["item_embeddings"], **_PER_VERSION,
          check_specs=[dg.AssetCheckSpec("sid_quality", asset="sid_codebooks",
                                         description="unique codes and quality thresholds, every version built")])
def sid_codebooks(context: dg.AssetExecutionContext, config: CodebookParams, dataset: DatasetResource,
                  paths: dg.ResourceParam[DataPaths], mlflow_tracking: MlflowResource):
    """Per version: RQ-KMeans codes per item (3 levels + a 4th collision code) and the seed's metrics."""
    cfg = build(CodebookConfig, config)
    meta, codes, failures = {}, {}, {}
    for name in context.partition_keys:
        with mlflow_tracking.run(context, "sid", f"{name}-sid_codebooks-{dataset.name}",
                                 {"version": name, "dataset": dataset.name, **config.model_dump()}) as run:
            m = build_codebook(paths, name, width=cfg.width or None, levels=cfg.levels, balanced=cfg.balanced,
                               train_size=cfg.train_size or None, niter=cfg.niter, seed=cfg.seed,
                               collaborative=cfg.collaborative, collaborative_dim=cfg.collaborative_dim,
                               collaborative_shrink=cfg.collaborative_shrink)
            run.metrics(m, to_metadata=False)
            codes[name] = pq.read_table(paths.sid / name / "codes.parquet").to_pandas()[["c1", "c2", "c3"]].to_numpy()
            png = paths.sid / name / "load_balance.png"
            plot_load_balance({name: codes[name]}, m["width"], png)
            run.plot("load_balance", png)
        _observe(context, name, {**numeric(m), "load_balance": plot(png),
                                 "codes": dg.MetadataValue.path(str(paths.sid / name))})
        meta.update({f"{name}/{k}": v for k, v in numeric(m).items()})
        failures[name] = quality_failures(m)
    png = paths.sid / "run_load_balance.png"
    plot_load_balance(codes, m["width"], png)  # one config per run: every version has the same width
    yield dg.MaterializeResult(metadata={**meta, "load_balance": plot(png)})
    yield dg.AssetCheckResult(check_name="sid_quality", passed=not any(failures.values()),
                              metadata={"failed": dg.MetadataValue.json(failures),
                                        **{k: v for k, v in meta.items() if k.split("/")[1] in QUALITY_KEYS}})


QUALITY_KEYS = ("unique_items", "items", "coverage_l1", "collision_p99", "balance_p90")


def quality_failures(m: dict) -> list[str]:
    return [msg for ok, msg in (
        (m["unique_items"] == m["items"], "every item has a unique code tuple"),
        (m["coverage_l1"] >= 0.9, "coverage_l1 >= 0.9 (no dead level-1 codes)"),
        (m["collision_p99"] <= 50, "collision_p99 <= 50"),
        (m["balance_p90"] <= 4.0, "balance_p90 <= 4 x uniform"),
    ) if not ok]
