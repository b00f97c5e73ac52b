"""The SID stage end to end (the Dagster assets wrap these): text/image encoding, fused item
embeddings per version, RQ-KMeans codebooks and their metrics. Files live under ``<data root>/sid/``."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from safetensors.numpy import load_file

from ..io import write_json, write_parquet, write_safetensors
from ..paths import DataPaths
from ..settings import setting
from .collaborative import collaborative_embeddings, content_is_degenerate, mix_embeddings
from .contrastive import ItemInputs, embed_items, train_fusion
from .features import category_levels, structured_features
from .fusion import FusionEncoder
from .metrics import sid_metrics
from .pairs import peer_pairs, query_pairs, swing_pairs
from .rqkmeans import RQKMeans, default_width, disambiguate
from .text import TextEncoder, item_texts, shared_text_encoder
from .versions import get_version


@dataclass
class EmbeddingConfig:
    """Training of one version's fused item embeddings (``item_embeddings``)."""

    seed: int = setting(0, "seed of the fusion model and its contrastive training")
    epochs: float = setting(0.0, "contrastive training epochs (0: the version's default)")


@dataclass
class CodebookConfig:
    """RQ-KMeans of one version's item embeddings (``sid_codebooks``)."""

    width: int = setting(0, "codes per level (0: ~2*sqrt(N) rounded to a power of two; 256 for 12k items)")
    levels: int = setting(3, "semantic code levels (a 4th collision code is added)")
    balanced: bool = setting(False, "capacity-balanced assignment (ceil(N/K * 1.1) per code)")
    train_size: int = setting(0, "items sampled to train each level (0: all)")
    niter: int = setting(20, "k-means iterations per level")
    seed: int = setting(0, "k-means seed")
    collaborative: float = setting(0.0, "weight in [0, 1] of collaborative vectors (train-split user-item spectral "
                                        "embedding) mixed into the content vectors before RQ-KMeans; a catalogue "
                                        "without item content (ids only) uses 1 whatever this says")
    collaborative_dim: int = setting(64, "dimensions of the collaborative vectors")
    collaborative_shrink: float = setting(0.0, "k > 0: an item's collaborative vector scaled by n / (n + k) for its n "
                                               "training users, so a rare item's code follows its content")


def load_items(paths: DataPaths) -> pd.DataFrame:
    return pq.read_table(paths.table("items")).to_pandas().sort_values("item_id").reset_index(drop=True)


def build_text_embeddings(paths: DataPaths, encoder: TextEncoder | None = None) -> dict:
    """Encode every item's text once (shared by all versions); the image branch where images exist."""
    items = load_items(paths)
    texts = item_texts(items)
    t0 = time.perf_counter()
    emb = (encoder or shared_text_encoder()).encode(texts)
    rate = len(texts) / (time.perf_counter() - t0)
    arrays = {"text": emb}
    local = items.image_path.fillna("").map(lambda p: bool(p) and Path(p).is_file())
    if local.all():
        from .image import ImageEncoder

        arrays["image"] = ImageEncoder().encode(items.image_path.tolist())
        image_branch = "on"
    else:
        image_branch = (f"off: {int((~local).sum())} of {len(items)} items have no local image file"
                        if local.any() else "off: the catalogue has no local images")
    root = paths.sid / "encoded"
    write_safetensors(root / "embeddings.safetensors", arrays)
    write_parquet(items[["item_id"]], root / "item_ids.parquet")
    return {"items": len(items), "text_dim": emb.shape[1], "image_branch": image_branch,
            "encode_items_per_s": round(rate, 1)}


def _pairs(paths: DataPaths, items: pd.DataFrame, sources) -> tuple[dict, list[str]]:
    pos = {k: i for i, k in enumerate(items.item_id)}
    out, texts = {}, []
    if "swing" in sources:
        out["swing"] = swing_pairs(pq.read_table(paths.swing).to_pandas(), pos)
    if "query" in sources or "peers" in sources:
        splits = pq.read_table(paths.splits, columns=["item_id", "scenario", "query", "split"]).to_pandas()
        search = splits[(splits.split == "train") & (splits.scenario == "search") & splits["query"].notna()]
        if "query" in sources:
            out["query"], texts = query_pairs(search, pos)
        if "peers" in sources:
            leaf = category_levels(items.category_path)["cate3"].fillna(items.category_path)
            out["peers"] = peer_pairs(search, pd.Series(leaf.to_numpy(), index=items.item_id), pos)
    return out, texts


def build_item_embeddings(paths: DataPaths, version: str, seed: int = 0, encoder: TextEncoder | None = None,
                          epochs: float | None = None) -> dict:
    """Fused, contrastively trained item vectors of one SID version (V1: the frozen text vectors)."""
    v = get_version(version)
    enc_root = paths.sid / "encoded"
    arrays = load_file(str(enc_root / "embeddings.safetensors"))
    items = load_items(paths)
    ids = pq.read_table(enc_root / "item_ids.parquet").to_pandas().item_id
    if not ids.equals(items.item_id):
        raise ValueError("encoded item ids differ from the items table: rematerialize the text embeddings")
    out_dir = paths.sid / version
    info = {"version": version, "description": v.description, "items": len(items)}
    if v.fusion is None:
        emb, losses = arrays["text"], []
    else:
        image = arrays.get("image") if v.use_image else None
        fcfg = type(v.fusion)(**{**asdict(v.fusion), "text_dim": arrays["text"].shape[1],
                                 "image_dim": 0 if image is None else image.shape[1]})
        feats = structured_features(items)
        torch.manual_seed(seed)
        model = FusionEncoder(fcfg, feats.vocab_sizes)
        inputs = ItemInputs(torch.from_numpy(arrays["text"]), None if image is None else torch.from_numpy(image),
                            feats)
        pairs, qtexts = _pairs(paths, items, v.train.sources)
        qemb = torch.from_numpy((encoder or shared_text_encoder()).encode(qtexts, progress=False)) if qtexts else None
        tcfg = type(v.train)(**{**asdict(v.train), "seed": seed, **({"epochs": epochs} if epochs else {})})
        t0 = time.perf_counter()
        model, _, losses = train_fusion(model, inputs, pairs, tcfg, qemb)
        info.update({"train_s": round(time.perf_counter() - t0, 1), "steps": len(losses),
                     **{f"pairs_{k}": len(p) for k, p in pairs.items()}})
        emb = embed_items(model, inputs)
        write_safetensors(out_dir / "fusion.safetensors", model.state_dict())
        write_json(out_dir / "fusion_config.json", {"fusion": asdict(fcfg), "train": asdict(tcfg),
                                                           "vocab_sizes": feats.vocab_sizes})
    write_safetensors(out_dir / "item_embeddings.safetensors", {"embeddings": emb}, {"version": version})
    write_json(out_dir / "losses.json", losses)
    info.update({"dim": int(emb.shape[1]), "final_loss": float(np.mean(losses[-20:])) if losses else None})
    return info


def load_fusion(paths: DataPaths, version: str) -> tuple[FusionEncoder, ItemInputs]:
    """The trained fusion encoder of a version (from safetensors) and the catalogue's inputs, to embed items."""
    from safetensors.torch import load_file as load_torch

    from .fusion import FusionConfig

    out_dir = paths.sid / version
    cfg = json.loads((out_dir / "fusion_config.json").read_text())
    items = load_items(paths)
    feats = structured_features(items)
    if feats.vocab_sizes != cfg["vocab_sizes"]:
        raise ValueError(f"{version}: the items table changed since training (vocabularies differ); retrain")
    model = FusionEncoder(FusionConfig(**cfg["fusion"]), feats.vocab_sizes)
    model.load_state_dict(load_torch(str(out_dir / "fusion.safetensors")))
    arrays = load_file(str(paths.sid / "encoded" / "embeddings.safetensors"))
    image = arrays.get("image") if cfg["fusion"]["image_dim"] else None
    inputs = ItemInputs(torch.from_numpy(arrays["text"]), None if image is None else torch.from_numpy(image), feats)
    return model.eval(), inputs


def build_codebook(paths: DataPaths, version: str, width: int | None = None, levels: int = CodebookConfig.levels,
                   balanced: bool = CodebookConfig.balanced, train_size: int | None = None,
                   niter: int = CodebookConfig.niter, seed: int = CodebookConfig.seed,
                   collaborative: float = CodebookConfig.collaborative,
                   collaborative_dim: int = CodebookConfig.collaborative_dim,
                   collaborative_shrink: float = CodebookConfig.collaborative_shrink) -> dict:
    """RQ-KMeans codes + the 4th disambiguation code for every item, with the seed's metrics."""
    out_dir = paths.sid / version
    emb = load_file(str(out_dir / "item_embeddings.safetensors"))["embeddings"]
    items = load_items(paths)
    emb, mixed = tokenizer_inputs(paths, items, emb, collaborative, collaborative_dim, seed,
                                  collaborative_shrink)
    width = width or default_width(len(items))
    rq = RQKMeans(levels=levels, width=width, niter=niter, seed=seed, train_size=train_size, balanced=balanced)
    t0 = time.perf_counter()
    codes = rq.fit(emb, ids=items.item_id.to_numpy())
    rq_s = time.perf_counter() - t0
    extra = disambiguate(codes, emb, rq.reconstruct(codes), items.item_id.to_numpy())
    table = pd.DataFrame({"item_id": items.item_id, **{f"c{i + 1}": codes[:, i] for i in range(levels)},
                          f"c{levels + 1}": extra})
    table["version"], table["width"] = version, width
    write_parquet(table, out_dir / "codes.parquet")
    write_safetensors(out_dir / "centroids.safetensors", {f"level_{i}": c for i, c in enumerate(rq.centroids)},
                 {"width": width, "levels": levels, "version": version})
    metrics = sid_metrics(codes, width, category_levels(items.category_path))
    full = table[[c for c in table.columns if c.startswith("c")]].drop_duplicates()
    metrics.update({"unique_items": int(len(full)), "items": len(items), "width": width, "levels": levels,
                    "rqkmeans_s": round(rq_s, 2), "max_extra_code": int(extra.max()), **mixed})
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def tokenizer_inputs(paths: DataPaths, items: pd.DataFrame, content: np.ndarray, weight: float, dim: int,
                     seed: int, shrink: float = 0.0) -> tuple[np.ndarray, dict]:
    """The vectors RQ-KMeans clusters: the version's content vectors, mixed with collaborative ones when asked
    or when the content cannot tell items apart (then collaborative alone)."""
    degenerate = content_is_degenerate(content)
    weight = 1.0 if degenerate else weight
    shrink = shrink if 0.0 < weight < 1.0 else 0.0  # only a mix with content has something to shrink towards
    info = {"collaborative_weight": weight, "content_degenerate": int(degenerate), "collaborative_shrink": shrink}
    if weight == 0.0:
        return content, info
    train = pq.read_table(paths.splits, columns=["user_id", "item_id", "split"],
                          filters=[("split", "=", "train")]).to_pandas()
    cf = collaborative_embeddings(train, items.item_id, dim=dim, seed=seed, shrink=shrink)
    cold = np.abs(cf).sum(1) == 0
    info["collaborative_cold_items"] = int(cold.sum())
    if weight == 1.0 and cold.any():  # nothing is known about these items: a seeded random direction each
        noise = np.random.default_rng(seed).standard_normal((int(cold.sum()), cf.shape[1])).astype(np.float32)
        cf[cold] = noise / np.linalg.norm(noise, axis=1, keepdims=True)
    return mix_embeddings(content, cf, weight), info

