"""Where OxyRec keeps its files: one work dir (default ``./.oxy`` in the repo root)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def work_dir() -> Path:
    """Root for data, MLflow store, Dagster home and caches (``OXY_HOME``)."""
    return Path(os.environ.get("OXY_HOME", REPO_ROOT / ".oxy")).resolve()


def datasets_dir() -> Path:
    """Public datasets folder (``OXY_DATASETS``, default ``../shared/datasets``)."""
    return Path(os.environ.get("OXY_DATASETS", REPO_ROOT.parent / "shared" / "datasets")).resolve()


def default_mlflow_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{work_dir() / 'mlflow.db'}")
