"""Where raw tables come from: the synthetic generator, a public-dataset adapter, or a shop's own files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..io import write_parquet
from ..paths import datasets_dir
from .synthetic import SyntheticConfig, write_raw_tables

KINDS = ("synthetic", "beauty", "amazon5core", "movielens100k", "amazon2014raw", "files")
DEFAULT_FOLDERS = {"beauty": "amazon_beauty_2014_5core", "movielens100k": "movielens_100k"}
QUARANTINE = "adapter_quarantine"  # the raw manifest's entry for the lines an adapter could not read


@dataclass
class DatasetConfig:
    """Which dataset feeds the pipeline.

    ``kind``: one of KINDS. ``path``: dataset folder (adapters; default under
    ``OXY_DATASETS``). ``category``: the Amazon category of ``amazon5core`` (its
    default folder is ``amazon_<category>_2014_5core``) and ``amazon2014raw``
    (e.g. ``Beauty``, ``Sports``). ``files``: for ``files``, paths of the ``items``,
    ``users`` and ``events`` tables. ``max_bad_fraction``: malformed lines an
    adapter quarantines before it refuses the file.
    """

    kind: str = "synthetic"
    path: str | None = None
    category: str = "Beauty"
    files: dict[str, str] = field(default_factory=dict)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    max_bad_fraction: float = 0.01

    def folder(self) -> Path:
        if self.path:
            return Path(self.path)
        if self.kind in DEFAULT_FOLDERS:
            return datasets_dir() / DEFAULT_FOLDERS[self.kind]
        if self.kind == "amazon5core":
            return datasets_dir() / f"amazon_{self.category.lower()}_2014_5core"
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

    if cfg.kind in ("beauty", "amazon5core"):
        name = "Beauty" if cfg.kind == "beauty" else cfg.category
        tables = adapters.read_amazon_5core(cfg.folder(), f"Amazon {name} 5-core", cfg.max_bad_fraction)
    elif cfg.kind == "movielens100k":
        tables = adapters.read_movielens_100k(cfg.folder())
    else:
        tables = adapters.read_amazon_raw(cfg.folder(), cfg.category)
    paths = {}
    quarantine = tables.pop("quarantine", None)
    if quarantine is not None:  # lines the adapter could not read, kept with file, line number and reason
        paths[QUARANTINE] = write_parquet(quarantine.astype({"line": "int64"}),
                                          raw_dir / "quarantine" / "adapter_lines.parquet")
    for name, df in tables.items():
        # Everything as text: validation parses and types each field itself.
        paths[name] = write_parquet(df.astype("string"), raw_dir / f"{name}.parquet")
    return paths
