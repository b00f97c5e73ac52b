"""TIGER's hashed user-ID token (``user_buckets``, a #15 lever): the user id's stable hash picks one of
``user_buckets`` learned vectors added to the encoder's profile token; the hash is the same in every process (training
and serving compute it apart), users in one bucket share their vector, and configs saved before it load without it."""

import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch

from oxy_dagster.model.config import GeneratorConfig
from oxy_dagster.model.data import Catalogue, build_tensors, user_hash


def test_the_user_hash_is_stable_across_processes_and_carried_by_every_sample():
    users = ["A1YJEY40YUW4SE", "u-2", "A1YJEY40YUW4SE", "17"]
    here = [user_hash(u) for u in users]
    there = subprocess.run([sys.executable, "-c", "from oxy_dagster.model.data import user_hash; "
                            f"print([user_hash(u) for u in {users!r}])"], capture_output=True, text=True, check=True)
    assert str(here) == there.stdout.strip()  # Python's own hash() is salted per process; this one is not
    assert here[0] == here[2] and len(set(here)) == 3 and all(0 <= h < 2 ** 62 for h in here)
    assert user_hash(17) == user_hash("17")  # an id read as a number hashes as its text

    cat = Catalogue(np.array(["i1", "i2"]), np.array([[0, 0, 0, 0], [1, 0, 0, 0]]), np.array([1, 1]),
                    np.array([1, 1]), "V1")
    samples = pd.DataFrame({
        "user_id": users, "target_item_id": ["i1", "i2", "i2", "i1"], "target_behavior": ["click"] * 4,
        "weight": [1.0] * 4, "scenario": ["homepage"] * 4, "trigger_item_id": [None] * 4,
        "instruction_source": ["default"] * 4, "instruction_text": [None] * 4,
        "short_item_ids": [["i2"], [], ["i1"], []], "short_behaviors": [["click"], [], ["click"], []],
        "long_item_ids": [[]] * 4, "split": ["train"] * 4,
        "age_band": [None] * 4, "gender": [None] * 4, "city": [None] * 4, "spending_tier": [None] * 4})
    data = build_tensors(samples, cat, 4, 4, None)
    assert data.tensors["user_hash"].tolist() == here


def test_the_user_vector_changes_the_encoding_and_learns_only_the_users_buckets(tiny):
    codes = tiny.catalogue()
    batch = tiny.batch(len(codes), b=4)
    model = tiny.model(codes, q2i_weight=0.0, user_buckets=8)
    assert model.user_emb.weight.shape == (8, model.cfg.d_model)
    model.eval()
    same = {**batch, "user_hash": torch.tensor([5, 5, 5, 5])}
    other = {**same, "user_hash": torch.tensor([5, 5, 5, 6])}
    instr, query = model.instruction(same)
    a, _, _ = model.encode(same, query)
    b, _, _ = model.encode(other, query)
    assert torch.equal(a[:3], b[:3]) and not torch.allclose(a[3], b[3])  # only the user whose bucket moved
    wrapped = {**same, "user_hash": torch.tensor([13, 5, 21, 5])}  # 13 % 8 == 5 == 21 % 8: one bucket
    assert torch.allclose(model.encode(wrapped, query)[0], a)

    model.train()
    before = model.user_emb.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    model({**batch, "user_hash": torch.tensor([1, 3, 3, 9])})["loss"].backward()
    opt.step()
    moved = (model.user_emb.weight.detach() - before).abs().sum(1) > 0
    assert moved.tolist() == [False, True, False, True, False, False, False, False]  # buckets 1 and 3 (9 % 8 == 1)


def test_configs_saved_before_the_user_token_load_without_it(tiny):
    saved = asdict(tiny.model(tiny.catalogue(), user_buckets=16).cfg)
    assert GeneratorConfig.from_saved(saved).user_buckets == 16
    saved.pop("user_buckets")
    assert GeneratorConfig.from_saved(saved).user_buckets == 0
    plain = tiny.model(tiny.catalogue())
    assert not hasattr(plain, "user_emb")
    plain.eval()
    batch = tiny.batch(len(tiny.catalogue()), b=2)  # a batch without user_hash: fine when the model has no buckets
    assert torch.isfinite(plain(batch)["loss"])
