"""One MLflow run mirrored into Dagster metadata: what every asset logs, written once.

``MlflowResource.run(...)`` yields a ``TrackedRun``; ``metrics`` / ``plot`` /
``artifact`` / ``meta`` log to MLflow and collect the same values as Dagster
metadata, and ``result()`` returns the asset's ``MaterializeResult``.
"""

from __future__ import annotations

import base64
from pathlib import Path

import dagster as dg


def numeric(d: dict, prefix: str = "") -> dict:
    """Keep the int/float entries of ``d`` (flattening nested dicts with ``/``)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[f"{prefix}{k}"] = v
        elif isinstance(v, dict):
            out.update(numeric(v, prefix=f"{prefix}{k}/"))
    return out


def metric_key(key: str) -> str:
    """A name both MLflow and Dagster accept (``recall@10`` -> ``recall_at_10``)."""
    return key.replace("@", "_at_")


def plot(path: str | Path) -> dg.MetadataValue:
    """Embed a PNG so it shows in the asset's metadata in the Dagster UI."""
    b64 = base64.b64encode(Path(path).read_bytes()).decode()
    return dg.MetadataValue.md(f"![{Path(path).name}](data:image/png;base64,{b64})")


class TrackedRun:
    """The active MLflow run plus the Dagster metadata collected beside it."""

    def __init__(self, run):
        self.run = run
        self.metadata: dict = {}

    def metrics(self, values: dict, step: int | None = None, to_metadata: bool = True) -> dict:
        """Log the numeric entries of ``values`` (nested dicts flattened); returns them as logged."""
        import mlflow

        flat = {metric_key(k): float(v) for k, v in numeric(values).items()}
        if flat:
            mlflow.log_metrics(flat, step=step)
        if to_metadata:
            self.metadata.update({metric_key(k): v for k, v in numeric(values).items()})
        return flat

    def plot(self, name: str, png: str | Path) -> None:
        import mlflow

        mlflow.log_artifact(str(png))
        self.metadata[name] = plot(png)

    def artifact(self, path: str | Path, name: str | None = None) -> None:
        """Log a file (or a directory's files) to MLflow; with ``name``, its path also goes into the metadata."""
        import mlflow

        (mlflow.log_artifacts if Path(path).is_dir() else mlflow.log_artifact)(str(path))
        if name:
            self.metadata[name] = dg.MetadataValue.path(str(path))

    def dict(self, obj: dict, filename: str) -> None:
        import mlflow

        mlflow.log_dict(obj, filename)

    def meta(self, **values) -> None:
        self.metadata.update(values)

    def result(self, **values) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={**self.metadata, **values})
