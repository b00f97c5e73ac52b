"""Where OxyRec keeps its files: one work dir (default ``./.oxy`` in the repo root), one folder per dataset."""

from __future__ import annotations

import os
from dataclasses import dataclass
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


@dataclass
class DataPaths:
    """Every artifact of one dataset lives under ``root`` (``<work>/data/<dataset>/``)."""

    root: Path

    def __post_init__(self):
        self.root = Path(self.root)

    raw = property(lambda self: self.root / "raw")
    raw_manifest = property(lambda self: self.root / "raw" / "manifest.json")
    validated = property(lambda self: self.root / "validated")
    splits = property(lambda self: self.root / "splits")
    swing = property(lambda self: self.root / "swing")
    samples = property(lambda self: self.root / "samples")
    reports = property(lambda self: self.root / "reports")
    sid = property(lambda self: self.root / "sid")
    reasoning = property(lambda self: self.root / "reasoning")
    models = property(lambda self: self.root / "models")

    def table(self, name: str) -> Path:
        return self.validated / name

    def quarantine(self, name: str) -> Path:
        return self.validated / "quarantine" / name

    def model(self, version: str, name: str = "pretrained") -> Path:
        """A generator's folder: ``models/<name>-<SID version>/`` (checkpoints, info, evaluations)."""
        return self.models / f"{name}-{version}"
