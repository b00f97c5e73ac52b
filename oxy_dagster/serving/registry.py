"""The MLflow model registry as the one place a service loads from: model ``oxyrec``, alias ``champion``.

``register_bundle`` logs a bundle folder as artifacts of the active MLflow run, creates a new version of
the registered model pointing at them and moves the alias to it. ``resolve_alias`` returns the version an
alias points at and a local copy of its bundle (downloaded once per version into a cache folder).
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_NAME = "oxyrec"
ALIAS = "champion"
REGISTRY_EXPERIMENT = "oxyrec-registry"


def _client(tracking_uri: str | None):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow import MlflowClient

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    return mlflow, MlflowClient()


def register_bundle(bundle: str | Path, tracking_uri: str | None = None, name: str = MODEL_NAME,
                    alias: str = ALIAS, tags: dict | None = None) -> str:
    """Log ``bundle`` into the active run (one is started if none is) and register it; returns the version."""
    mlflow, client = _client(tracking_uri)
    from mlflow.exceptions import MlflowException

    run = mlflow.active_run()
    owned = run is None
    if owned:
        # an explicit experiment: the fluent API's remembered experiment id may belong to another store
        exp = client.get_experiment_by_name(REGISTRY_EXPERIMENT)
        exp_id = exp.experiment_id if exp else client.create_experiment(REGISTRY_EXPERIMENT)
        run = mlflow.start_run(run_name=f"register-{name}", experiment_id=exp_id)
    try:
        mlflow.log_artifacts(str(bundle), "bundle")
        try:
            client.create_registered_model(name, description="OxyRec generator bundles (oxyrec-bundle/1)")
        except MlflowException as e:
            if "already exists" not in str(e).lower() and "RESOURCE_ALREADY_EXISTS" not in str(e):
                raise
        mv = client.create_model_version(name, source=f"{run.info.artifact_uri}/bundle", run_id=run.info.run_id,
                                         tags={k: str(v) for k, v in (tags or {}).items()})
        client.set_registered_model_alias(name, alias, mv.version)
        return str(mv.version)
    finally:
        if owned:
            mlflow.end_run()


def resolve_alias(cache_dir: str | Path, tracking_uri: str | None = None, name: str = MODEL_NAME,
                  alias: str = ALIAS) -> tuple[str, Path]:
    """(version, local bundle folder) of ``name@alias``; the download is kept per version in ``cache_dir``."""
    mlflow, client = _client(tracking_uri)
    mv = client.get_model_version_by_alias(name, alias)
    local = Path(cache_dir) / f"{name}-v{mv.version}"
    if not (local / "manifest.json").exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(local.name + ".partial")
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(tmp))
        inner = tmp / "bundle" if (tmp / "bundle" / "manifest.json").exists() else tmp
        os.replace(inner, local)
        shutil.rmtree(tmp, ignore_errors=True)
    return str(mv.version), local
