"""The dense item-retrieval head (LIGER's hybrid): its loss is the full-softmax NLL of the target item, it
learns, and beam search re-ranks its candidates by it the same way in the reference and the serving decoder."""

import numpy as np
import torch

from oxy_dagster.model.decoding import beam_search
from oxy_dagster.model.fast_decoding import BeamDecoder
from oxy_dagster.model.trie import CodeTrie, DenseTrie


def test_dense_loss_is_the_weighted_full_softmax_nll_of_the_target(tiny):
    codes = tiny.catalogue()
    model = tiny.model(codes, dense_weight=0.5, q2i_weight=0.0, dense_free_items=False).eval()  # the whole embedding
    batch = tiny.batch(len(codes), b=6)
    batch["weight"] = torch.tensor([1.0, 2.0, 1.0, 3.0, 1.0, 1.0])
    out = model(batch)
    # by hand: the decoder state before the first code, projected, dotted with every item's vector
    instr, query = model.instruction(batch)
    memory, mask, _ = model.encode(batch, query)
    h, _ = model.decode(model.prefix(instr), memory, mask)
    rows = torch.arange(len(codes))
    items = model.item_embedding(rows) + model.item_text_proj(model.item_text[rows])
    logits = model.dense_proj(h[:, -1]) @ items.T
    nll = torch.nn.functional.cross_entropy(logits, batch["target"], reduction="none")
    want = (nll * batch["weight"]).sum() / batch["weight"].sum()
    assert torch.allclose(out["dense"], want, atol=1e-5)
    assert torch.allclose(out["loss"], out["ntp"] + 0.5 * out["dense"] + model.cfg.moe_balance_weight
                          * out["balance"], atol=1e-5)
    assert "dense" in tiny.model(codes).eval()(batch)  # on by default (weight 0.25)
    assert "dense" not in tiny.model(codes, dense_weight=0.0).eval()(batch)  # weight 0: no head


def test_dense_head_learns_the_toy_task(tiny):
    codes = tiny.catalogue()
    data = tiny.data(codes)
    model = tiny.model(codes, dense_weight=1.0, q2i_weight=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = data.batch(np.arange(len(data)))
    first = float(model(batch)["dense"].detach())
    for _ in range(60):
        opt.zero_grad()
        model(batch)["loss"].backward()
        opt.step()
    assert float(model(batch)["dense"].detach()) < 0.5 * first


def test_dense_mix_reranks_the_beam_and_serving_agrees(tiny):
    codes = tiny.catalogue()
    model = tiny.model(codes, dense_weight=1.0, dense_mix=0.0).eval()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    batch = tiny.batch(len(codes), b=5)
    plain, plain_scores = beam_search(model, batch, trie, beam=64, topk=10)
    only_gen, _ = beam_search(model, batch, trie, beam=64, topk=10, dense_mix=0.0)
    assert torch.equal(plain, only_gen)
    mixed, mixed_scores = beam_search(model, batch, trie, beam=64, topk=10, dense_mix=3.0)
    assert not torch.equal(mixed, plain)  # a strong dense term changes the order
    # the mixed score is the generation log-probability plus mix x the dense log-probability
    full, full_scores = beam_search(model, batch, trie, beam=64, topk=64)
    instr, query = model.instruction(batch)
    memory, mask, _ = model.encode(batch, query)
    h, _ = model.decode(model.prefix(instr), memory, mask)
    dense = model.dense_logp(h[:, -1]).detach()
    for r in range(5):
        gen = dict(zip(full[r].tolist(), full_scores[r].tolist()))
        for item, s in zip(mixed[r].tolist(), mixed_scores[r].tolist()):
            assert abs(s - (gen[item] + 3.0 * float(dense[r, item]))) < 1e-4
    model.cfg.dense_mix = 3.0  # the model's own mix is the default of both decoders
    default, _ = beam_search(model, batch, trie, beam=64, topk=10)
    fast, fast_scores = BeamDecoder(model, DenseTrie.from_trie(trie)).decode(batch, beam=64, topk=10)
    assert torch.equal(default, mixed) and torch.equal(fast, mixed)
    assert torch.allclose(fast_scores, mixed_scores, atol=1e-4)


def test_a_config_saved_before_the_dense_head_loads_without_one(tiny):
    from dataclasses import asdict

    from oxy_dagster.model.config import GeneratorConfig

    saved = asdict(tiny.model(tiny.catalogue()).cfg)
    for field in ("dense_weight", "dense_mix"):
        saved.pop(field)
    cfg = GeneratorConfig.from_saved(saved)
    assert cfg.dense_weight == 0.0 and cfg.dense_mix == 0.0 and cfg.code_vocab == tuple(saved["code_vocab"])
    assert GeneratorConfig.from_saved({**saved, "dense_weight": 1.0}).dense_weight == 1.0
