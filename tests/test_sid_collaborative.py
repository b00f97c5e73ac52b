"""The collaborative tokenizer: spectral item vectors from train interactions, and codes for ids-only catalogues."""

import numpy as np
import pandas as pd
import pytest

from oxy_dagster.io import write_parquet, write_safetensors
from oxy_dagster.paths import DataPaths
from oxy_dagster.sid.build import build_codebook
from oxy_dagster.sid.collaborative import collaborative_embeddings, content_is_degenerate, mix_embeddings

GROUPS, PER_GROUP = 8, 25


def grouped_interactions(n_users: int = 480, per_user: int = 6, noise: float = 0.1, seed: int = 0):
    """Users buy mostly inside one taste group; ``noise`` of their purchases are anywhere."""
    rng = np.random.default_rng(seed)
    items = [f"i{g}_{k}" for g in range(GROUPS) for k in range(PER_GROUP)]
    rows = []
    for u in range(n_users):
        g = u % GROUPS
        for _ in range(per_user):
            j = rng.integers(len(items)) if rng.random() < noise else g * PER_GROUP + rng.integers(PER_GROUP)
            rows.append((f"u{u}", items[j]))
    return items, pd.DataFrame(rows, columns=["user_id", "item_id"])


def group_of(item_id: str) -> int:
    return int(item_id[1:].split("_")[0])


def test_neighbours_share_the_taste_group():
    items, inter = grouped_interactions()
    emb = collaborative_embeddings(inter, items, dim=16)
    assert emb.shape == (len(items), 16) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    top = np.argsort(-sim, axis=1)[:, :5]
    groups = np.array([group_of(i) for i in items])
    same = (groups[top] == groups[:, None]).mean()
    assert same > 0.9, same  # chance is 1/8


def test_unseen_items_get_zero_vectors_and_unknown_items_are_named():
    items, inter = grouped_interactions()
    emb = collaborative_embeddings(inter, [*items, "never_bought"], dim=8)
    assert np.abs(emb[-1]).sum() == 0 and (np.abs(emb[:-1]).sum(1) > 0).all()
    bad = pd.concat([inter, pd.DataFrame({"user_id": ["u0"], "item_id": ["ghost"]})])
    with pytest.raises(ValueError, match=r"1 interaction\(s\) name items missing from the catalogue.*ghost"):
        collaborative_embeddings(bad, items)


def test_shrink_shortens_rare_items_by_their_user_count():
    items, inter = grouped_interactions()
    users = inter.drop_duplicates().groupby("item_id").user_id.nunique().reindex(items).to_numpy()
    assert users.min() < users.max()  # the fixture has rare and popular items
    plain = collaborative_embeddings(inter, items, dim=16)
    shrunk = collaborative_embeddings(inter, items, dim=16, shrink=5.0)
    np.testing.assert_allclose(np.linalg.norm(shrunk, axis=1), users / (users + 5.0), rtol=1e-5)
    np.testing.assert_allclose(shrunk / np.linalg.norm(shrunk, axis=1, keepdims=True), plain, atol=1e-5)
    with pytest.raises(ValueError, match="shrink must be >= 0"):
        collaborative_embeddings(inter, items, shrink=-1.0)
    # mixed with content, a rare item's vector leans to its content more than a popular item's
    content = np.random.default_rng(0).standard_normal((len(items), 8)).astype(np.float32)
    mixed = mix_embeddings(content, shrunk, 0.6)
    share = np.linalg.norm(mixed[:, 8:], axis=1) / np.linalg.norm(mixed, axis=1)
    rare, popular = users.argmin(), users.argmax()
    assert share[rare] < share[popular]


def test_degenerate_content_and_the_mix():
    rng = np.random.default_rng(1)
    same = np.tile(rng.standard_normal((1, 6)).astype(np.float32), (50, 1))
    distinct = rng.standard_normal((50, 6)).astype(np.float32)
    assert content_is_degenerate(same) and not content_is_degenerate(distinct)
    cf = distinct[::-1] / np.linalg.norm(distinct[::-1], axis=1, keepdims=True)
    content = distinct * 3.0  # not unit length: the mix normalises it
    mixed = mix_embeddings(content, cf, 0.25)
    unit = distinct / np.linalg.norm(distinct, axis=1, keepdims=True)
    assert np.allclose(mixed @ mixed.T, 0.75 * unit @ unit.T + 0.25 * cf @ cf.T, atol=1e-5)
    assert mix_embeddings(content, cf, 0.0) is content and mix_embeddings(content, cf, 1.0) is cf
    with pytest.raises(ValueError, match="must be in"):
        mix_embeddings(content, cf, 1.5)


def ids_only_catalogue(root, content: np.ndarray | None = None) -> DataPaths:
    """A catalogue in the pipeline's layout whose items carry no content (one placeholder vector for all)."""
    paths = DataPaths(root)
    items, inter = grouped_interactions()
    items.append("i0_late")  # bought only as a held-out target: it must not get a collaborative vector
    write_parquet(pd.DataFrame({"item_id": items, "category_path": [f"G{group_of(i)} > x" for i in items]}),
                  paths.table("items") / "part-0.parquet")
    held_out = inter.groupby("user_id").tail(1).index
    inter["split"] = np.where(inter.index.isin(held_out), "test", "train")
    inter.loc[held_out[0], "item_id"] = "i0_late"
    write_parquet(inter, paths.splits / "part-0.parquet")
    emb = np.ones((len(items), 12), np.float32) if content is None else content
    write_safetensors(paths.sid / "V1" / "item_embeddings.safetensors", {"embeddings": emb})
    return paths


def test_ids_only_catalogue_gets_collaborative_codes(tmp_path):
    paths = ids_only_catalogue(tmp_path / "ids_only")
    m = build_codebook(paths, "V1", width=8, levels=2)
    assert m["content_degenerate"] == 1 and m["collaborative_weight"] == 1.0
    assert m["unique_items"] == m["items"] == GROUPS * PER_GROUP + 1
    assert m["collaborative_cold_items"] == 1
    assert m["purity_cate1"] > 0.8, m  # level-1 codes follow taste groups the content never saw


def test_content_codes_stay_content_unless_asked(tmp_path):
    rng = np.random.default_rng(2)
    content = rng.standard_normal((GROUPS * PER_GROUP + 1, 12)).astype(np.float32)  # content unrelated to tastes
    paths = ids_only_catalogue(tmp_path / "content", content)
    plain = build_codebook(paths, "V1", width=8, levels=2)
    assert plain["content_degenerate"] == 0 and plain["collaborative_weight"] == 0.0
    assert "collaborative_cold_items" not in plain
    mixed = build_codebook(paths, "V1", width=8, levels=2, collaborative=0.7)
    assert mixed["collaborative_weight"] == 0.7 and mixed["collaborative_cold_items"] == 1
    print(f"purity_cate1 content {plain['purity_cate1']:.3f}, mixed {mixed['purity_cate1']:.3f}")
    assert mixed["purity_cate1"] > plain["purity_cate1"] + 0.2, (plain["purity_cate1"], mixed["purity_cate1"])
