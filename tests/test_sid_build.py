"""The SID stage on a small synthetic shop with the real offline encoders."""

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from oxy_dagster.sid.build import build_codebook, build_item_embeddings
from oxy_dagster.sid.text import item_texts, shared_text_encoder


@pytest.fixture(scope="module")
def shop(make_shop):
    """A shop of its own (300 users, seed 5): these tests rebuild every version's codebook."""
    return make_shop(n_users=300, seed=5)


def test_text_encoder_is_offline_and_semantic():
    enc = shared_text_encoder()
    e = enc.encode(["red lipstick", "matte lip color", "electric space heater"], progress=False)
    assert e.shape == (3, 384)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.1


def test_item_texts_fall_back_and_reject_empty():
    df = pd.DataFrame({"item_id": ["a", "b"], "title": ["Phone", None], "brand": [None, "Acme"],
                       "category_path": ["E > P", "E > C"]})
    assert item_texts(df) == ["Phone | E > P", "Acme | E > C"]
    df.loc[1, ["brand", "category_path"]] = [None, ""]
    with pytest.raises(ValueError, match=r"1 item\(s\) have no text at all .*\['b'\]"):
        item_texts(df)


@pytest.mark.parametrize("version", ["V1", "V4"])
def test_version_embeddings_and_codebook(shop, version):
    info = build_item_embeddings(shop, version, epochs=0.5)
    emb = load_file(str(shop.sid / version / "item_embeddings.safetensors"))["embeddings"]
    assert emb.shape[0] == info["items"] and np.isfinite(emb).all()
    if version == "V4":
        assert info["pairs_swing"] > 0 and info["pairs_query"] > 0 and info["pairs_peers"] > 0
        assert emb.shape[1] == 256
        assert (shop.sid / version / "fusion.safetensors").exists()
    m = build_codebook(shop, version, width=32)
    codes = pd.read_parquet(shop.sid / version / "codes.parquet")
    assert m["unique_items"] == m["items"] == len(codes)
    assert not codes.duplicated(["c1", "c2", "c3", "c4"]).any()
    assert m["coverage_l1"] > 0.9 and 0 < m["purity_cate1"] <= 1
    saved = json.loads((shop.sid / version / "metrics.json").read_text())
    assert saved["collision_p99"] == m["collision_p99"]


def test_a_derived_version_is_its_base_vectors_under_another_codebook(shop):
    """``benchmarks/beauty_data.py``: ``V1-seed1-width16`` is V1's item vectors under RQ-KMeans seed 1, width 16."""
    from benchmarks.beauty_data import codebook_overrides, derived_codebook

    build_item_embeddings(shop, "V1")
    name = derived_codebook(shop, "V1", {"width": 16, "seed": 1})
    assert name == "V1-seed1-width16" and codebook_overrides(name) == ("V1", {"seed": 1, "width": 16})
    vectors = [load_file(str(shop.sid / v / "item_embeddings.safetensors"))["embeddings"] for v in ("V1", name)]
    assert np.array_equal(*vectors)
    codes = pd.read_parquet(shop.sid / name / "codes.parquet")
    assert (codes.width == 16).all() and codes.c1.max() < 16 and not codes.duplicated(["c1", "c2", "c3", "c4"]).any()
    built = (shop.sid / name / "codes.parquet").stat().st_mtime_ns
    assert derived_codebook(shop, "V1", {"seed": 1, "width": 16}) == name
    assert (shop.sid / name / "codes.parquet").stat().st_mtime_ns == built  # built once
    assert derived_codebook(shop, "V1", {}) == "V1"


def test_swing_training_brings_neighbours_into_top10(shop):
    """Recall@10 of each item's top-3 Swing neighbours among its nearest items: V3 (trained) beats V1 (frozen)."""
    swing = pd.read_parquet(shop.swing).query("rank <= 3")
    ids = pd.read_parquet(shop.sid / "encoded" / "item_ids.parquet").item_id
    pos = {k: i for i, k in enumerate(ids)}
    a, b = swing.item_i.map(pos).to_numpy(), swing.item_j.map(pos).to_numpy()

    def neighbour_recall(version):
        e = load_file(str(shop.sid / version / "item_embeddings.safetensors"))["embeddings"]
        sim = e @ e.T
        np.fill_diagonal(sim, -np.inf)
        top = np.argsort(-sim, axis=1)[:, :10]
        return np.mean([b[k] in top[a[k]] for k in range(len(a))])

    build_item_embeddings(shop, "V1")
    build_item_embeddings(shop, "V3", epochs=4.0)
    v1, v3 = neighbour_recall("V1"), neighbour_recall("V3")
    print(f"neighbour recall@10 V1 {v1:.3f} V3 {v3:.3f}")
    assert v3 > v1 + 0.03


def test_unknown_version_is_rejected(shop):
    with pytest.raises(ValueError, match=r"unknown SID version 'V9'; known: \['V1', 'V2', 'V3', 'V4'\]"):
        build_item_embeddings(shop, "V9")


def test_image_encoder_on_generated_images(tmp_path):
    from PIL import Image

    from oxy_dagster.sid.image import ImageEncoder

    paths = []
    for i, color in enumerate([(220, 20, 20), (230, 30, 25), (20, 40, 220)]):
        img = Image.new("RGB", (96, 96), color)
        for y in range(0, 96, 12):  # stripes so the images are not flat
            for x in range(96):
                img.putpixel((x, y), (255, 255, 255))
        p = tmp_path / f"img{i}.png"
        img.save(p)
        paths.append(str(p))
    e = ImageEncoder().encode(paths, progress=False)
    assert e.shape == (3, 1280)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]  # two reds closer than red vs blue
