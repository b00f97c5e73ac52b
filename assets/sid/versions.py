"""Per-version assets ``<V>/item_embeddings`` and ``<V>/sid_codebooks`` for V1-V4, from one factory."""

import json

import dagster as dg
import mlflow

from oxy_dagster.sid.build import build_codebook, build_item_embeddings, sid_root
from oxy_dagster.sid.metrics import plot_load_balance
from oxy_dagster.sid.versions import VERSIONS

from ..metadata import numeric, plot
from ..resources import DatasetResource, MlflowResource, StorageResource


class EmbeddingParams(dg.Config):
    seed: int = 0
    epochs: float = 0.0  # 0: the version's default


class CodebookParams(dg.Config):
    width: int = 0  # 0: chosen from catalogue size (~2*sqrt(N), power of two; 256 for 12k items)
    levels: int = 3
    balanced: bool = False
    train_size: int = 0  # 0: train every level on all items
    niter: int = 20
    seed: int = 0


def _loss_plot(losses, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(losses)
    ax.set(xlabel="step", ylabel="InfoNCE loss (sum over sources)", title=path.parent.name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def version_assets(name: str):
    @dg.asset(key=[name, "item_embeddings"], group_name="sid", compute_kind="torch",
              deps=["item_text_embeddings", "swing_pairs", "loo_splits"],
              description=f"{name}: {VERSIONS[name].description}")
    def item_embeddings(context: dg.AssetExecutionContext, config: EmbeddingParams, dataset: DatasetResource,
                        storage: StorageResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
        paths = storage.data_paths(dataset.name)
        with mlflow_tracking.run(context, "sid", f"{name}-item_embeddings-{dataset.name}",
                                 {"version": name, "dataset": dataset.name, **config.model_dump()}):
            info = build_item_embeddings(paths, name, seed=config.seed, epochs=config.epochs or None)
            losses = json.loads((sid_root(paths) / name / "losses.json").read_text())
            for step, loss in enumerate(losses):
                mlflow.log_metric("loss", loss, step=step)
            meta = {**numeric(info), "version": name}
            if losses:
                png = sid_root(paths) / name / "loss.png"
                _loss_plot(losses, png)
                mlflow.log_artifact(str(png))
                meta["loss_curve"] = plot(png)
            mlflow.log_dict(info, "info.json")
        return dg.MaterializeResult(metadata=meta)

    @dg.asset(key=[name, "sid_codebooks"], group_name="sid", compute_kind="faiss", deps=[[name, "item_embeddings"]],
              description=f"{name}: RQ-KMeans codes per item (3 levels + a 4th collision code), metrics")
    def sid_codebooks(context: dg.AssetExecutionContext, config: CodebookParams, dataset: DatasetResource,
                      storage: StorageResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
        paths = storage.data_paths(dataset.name)
        with mlflow_tracking.run(context, "sid", f"{name}-sid_codebooks-{dataset.name}",
                                 {"version": name, "dataset": dataset.name, **config.model_dump()}):
            m = build_codebook(paths, name, width=config.width or None, levels=config.levels,
                               balanced=config.balanced, train_size=config.train_size or None, niter=config.niter,
                               seed=config.seed)
            mlflow.log_metrics(numeric(m))
            import pyarrow.parquet as pq

            codes = pq.read_table(sid_root(paths) / name / "codes.parquet").to_pandas()[["c1", "c2", "c3"]]
            png = sid_root(paths) / name / "load_balance.png"
            plot_load_balance({name: codes.to_numpy()}, m["width"], png)
            mlflow.log_artifact(str(png))
        return dg.MaterializeResult(metadata={**numeric(m), "load_balance": plot(png),
                                              "codes": dg.MetadataValue.path(str(sid_root(paths) / name))})

    @dg.asset_check(asset=sid_codebooks, name="sid_quality", description="unique codes and quality thresholds")
    def sid_quality(dataset: DatasetResource, storage: StorageResource) -> dg.AssetCheckResult:
        m = json.loads((sid_root(storage.data_paths(dataset.name)) / name / "metrics.json").read_text())
        failures = [msg for ok, msg in (
            (m["unique_items"] == m["items"], "every item has a unique code tuple"),
            (m["coverage_l1"] >= 0.9, "coverage_l1 >= 0.9 (no dead level-1 codes)"),
            (m["collision_p99"] <= 50, "collision_p99 <= 50"),
            (m["balance_p90"] <= 4.0, "balance_p90 <= 4 x uniform"),
        ) if not ok]
        return dg.AssetCheckResult(passed=not failures, metadata={"failed": failures, **numeric(m)})

    return [item_embeddings, sid_codebooks], [sid_quality]


ASSETS, CHECKS = [], []
for _v in VERSIONS:
    _a, _c = version_assets(_v)
    ASSETS += _a
    CHECKS += _c
