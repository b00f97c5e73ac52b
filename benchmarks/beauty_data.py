"""The Beauty benchmarks' inputs: the data stage, text embeddings and SID codebooks, each built once.

A derived SID version names its base version and the ``build_codebook`` overrides of its codebook,
``<base>-<key><value>...`` (``V4-collaborative0.6-seed1``: V4's item vectors mixed 0.6 with collaborative
vectors, RQ-KMeans seeded 1); ``prepare_data`` builds any such name from the base version's item vectors.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from oxy_dagster.data.pipeline import run_all
from oxy_dagster.data.sources import DatasetConfig
from oxy_dagster.paths import DataPaths
from oxy_dagster.paths import work_dir as oxy_home
from oxy_dagster.sid.build import build_codebook, build_item_embeddings, build_text_embeddings
from oxy_dagster.spark import get_spark, stop_spark


def add_workdir_argument(ap) -> None:
    """The Beauty benchmarks' ``--workdir``: where the data and SID artifacts live (``beauty_paths``)."""
    ap.add_argument("--workdir", default=None, help="data + SID artifacts (default: $OXY_HOME/bench/beauty)")


def beauty_paths(workdir: str | None = None) -> DataPaths:
    """The Beauty benchmarks' data and SID artifacts: ``workdir``, else ``$OXY_HOME/bench/beauty``."""
    return DataPaths(Path(workdir) if workdir else oxy_home() / "bench" / "beauty")


def prepare_data(paths: DataPaths, dataset_path: str | None, versions: list[str]) -> None:
    """The data stage, the text embeddings and each SID version's codebook, each built once; a derived version
    (``V4-collaborative0.6-seed1``) is its base version's item vectors under a codebook with those overrides."""
    if not (paths.samples / "_schema.json").exists():
        run_all(get_spark(), DatasetConfig(kind="beauty", path=dataset_path), paths.root)
        stop_spark()
    if not (paths.sid / "encoded" / "embeddings.safetensors").exists():
        build_text_embeddings(paths)
    for v in versions:
        base, overrides = codebook_overrides(v)
        if not (paths.sid / base / "codes.parquet").exists():
            build_item_embeddings(paths, base)
            build_codebook(paths, base)
        derived_codebook(paths, base, overrides)


CODEBOOK_KEYS = {"width": int, "levels": int, "niter": int, "seed": int, "collaborative": float,
                 "collaborative_dim": int, "collaborative_shrink": float}


def derived_codebook(paths: DataPaths, version: str, overrides: dict) -> str:
    """``version`` itself, or a copy of its item vectors under ``<version>-<key><value>...`` with a codebook built
    with those ``build_codebook`` overrides (built once)."""
    if not overrides:
        return version
    name = derived_name(version, overrides)
    if not (paths.sid / name / "codes.parquet").exists():
        (paths.sid / name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.sid / version / "item_embeddings.safetensors",
                        paths.sid / name / "item_embeddings.safetensors")
        print(f"{name}: codebook", build_codebook(paths, name, **overrides), flush=True)
    return name


def derived_name(version: str, overrides: dict) -> str:
    """``<version>-<key><value>...`` in key order, a whole float spelled as an integer (``collaborative_shrink10``, not
    ``10.0``), so the name a user writes is the folder the codebook is built in (``codebook_overrides``'s inverse)."""
    return version + "-" + "-".join(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}"
                                    for k, v in sorted(overrides.items()))


def codebook_overrides(name: str) -> tuple[str, dict]:
    """The base version and codebook overrides a derived version's name spells (``derived_codebook``'s inverse)."""
    base, *parts = name.split("-")
    overrides = {}
    for part in parts:
        m = re.fullmatch(r"([a-z_]+?)([0-9.]+)", part)
        if not m or m.group(1) not in CODEBOOK_KEYS:
            raise ValueError(f"SID version {name!r}: {part!r} is not <key><number> with a key among "
                             f"{sorted(CODEBOOK_KEYS)}")
        overrides[m.group(1)] = CODEBOOK_KEYS[m.group(1)](m.group(2))
    return base, overrides


def check_catalogue_order(cat, other, version: str, base: str) -> None:
    """Members decoded together must number the catalogue alike: ``version``'s catalogue ``other`` against ``base``'s
    ``cat`` (same item ids in the same rows), else a clear error."""
    if len(other.item_ids) != len(cat.item_ids) or not (other.item_ids == cat.item_ids).all():
        raise ValueError(f"{version} orders the catalogue differently from {base}")
