"""Where raw tables come from: the synthetic generator, a public-dataset adapter, or a shop's own files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..io import write_parquet
from ..paths import datasets_dir
from .synthetic import SyntheticConfig, write_raw_tables

KINDS = ("synthetic", "beauty", "movielens100k", "amazon2014raw", "files")
DEFAULT_FOLDERS = {"beauty": "amazon_beauty_2014_5core", "movielens100k": "movielens_100k"}


@dataclass
class DatasetConfig:
    """Which dataset feeds the pipeline.

    ``kind``: one of KINDS. ``path``: dataset folder (adapters; default under
    ``OXY_DATASETS``). ``category``: for ``amazon2014raw`` (e.g. ``Beauty``).
    ``files``: for ``files``, paths of the ``items``, ``users`` and ``events`` tables.
    """

    kind: str = "synthetic"
    path: str | None = None
    category: str = "Beauty"
    files: dict[str, str] = field(default_factory=dict)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def folder(self) -> Path:
        if self.path:
            return Path(self.path)
        if self.kind in DEFAULT_FOLDERS:
            return datasets_dir() / DEFAULT_FOLDERS[self.kind]
        raise ValueError(f"dataset kind {self.kind!r} needs an explicit path")


def materialize_raw(cfg: DatasetConfig, raw_dir: str | Path) -> dict[str, Path]:
    """Write (or locate) the raw items/users/events tables; return their paths."""
    raw_dir = Path(raw_dir)
    if cfg.kind not in KINDS:
        raise ValueError(f"unknown dataset kind {cfg.kind!r}; expected one of {KINDS}")
    if cfg.kind == "synthetic":
        return write_raw_tables(raw_dir, cfg.synthetic)
    if cfg.kind == "files":
        missing = [t for t in ("items", "users", "events") if t not in cfg.files]
        if missing:
            raise ValueError(f"dataset kind 'files' needs paths for {missing}")
        return {t: Path(cfg.files[t]) for t in ("items", "users", "events")}
    from . import adapters

    if cfg.kind == "beauty":
        tables = adapters.read_beauty(cfg.folder())
    elif cfg.kind == "movielens100k":
        tables = adapters.read_movielens_100k(cfg.folder())
    else:
        tables = adapters.read_amazon_raw(cfg.folder(), cfg.category)
    paths = {}
    for name, df in tables.items():
        # Everything as text: validation parses and types each field itself.
        paths[name] = write_parquet(df.astype("string"), raw_dir / f"{name}.parquet")
    return paths
