"""Output heads tied to the code embeddings (``tie_heads``, a #15 lever): one matrix per code level serves as the
input embedding and the output layer, a checkpoint holds it once, training moves it from both ends, and the
tied model trains, resumes and decodes like the untied one."""

from dataclasses import asdict

import numpy as np
import torch

from oxy_dagster.model.checkpoint import load_checkpoint, save_checkpoint
from oxy_dagster.model.config import GeneratorConfig, TrainConfig
from oxy_dagster.model.decoding import beam_search
from oxy_dagster.model.train import train
from oxy_dagster.model.trie import CodeTrie


def test_a_tied_head_scores_codes_by_their_input_embeddings(tiny):
    codes = tiny.catalogue()
    model = tiny.model(codes, tie_heads=True)
    untied = tiny.model(codes)
    names = set(model.state_dict())
    assert not any(n.startswith("heads.") and n.endswith(".weight") for n in names)
    assert {f"heads.{i}.bias" for i in range(len(tiny.vocab))} <= names
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    d = model.cfg.d_model
    assert n_params(untied) - n_params(model) == sum(d * v for v in tiny.vocab)
    h = torch.randn(5, d)
    for i, head in enumerate(model.heads):
        expected = (h / d ** 0.5) @ model.code_emb[i].weight.T + head.bias
        assert torch.allclose(head(h), expected, atol=1e-6)


def test_the_output_side_trains_the_shared_matrix(tiny):
    codes = tiny.catalogue()
    codes[:, -1] = np.arange(len(codes)) % 2  # a collision code with two values, so its softmax has a gradient
    model = tiny.model(codes, tie_heads=True, q2i_weight=0.0, code_vocab=(*tiny.vocab[:-1], 2))
    batch = tiny.batch(len(codes), b=4)
    # Only the output side: a code level whose embedding is never an input still gets a gradient through its head.
    model.item_embedding = lambda rows: torch.zeros(*rows.shape, model.cfg.d_model)
    model(batch)["loss"].backward()
    last = len(tiny.vocab) - 1  # the last level is never fed to the decoder
    grad = model.code_emb[last].weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_a_tied_model_saves_resumes_and_decodes(tiny, tmp_path):
    codes = tiny.catalogue()
    data = tiny.data(codes, n=128)
    model = tiny.model(codes, tie_heads=True)
    cfg = TrainConfig(steps=40, batch_size=32, warmup=3, lr=5e-3, ckpt_every=20, log_every=10, engine="torch")
    first = train(model, data, np.arange(len(data)), cfg, tmp_path / "ckpt", stop_at=20)
    resumed = train(model, data, np.arange(len(data)), cfg, tmp_path / "ckpt")  # from step 20's checkpoint
    assert resumed[0]["step"] == 21 and resumed[-1]["step"] == 40
    losses = [r["loss"] for r in first + resumed]
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < np.mean(losses[:5])
    opt = torch.optim.AdamW(model.parameters())
    saved = save_checkpoint(tmp_path / "again", 1, model, opt, None, {})
    restored = tiny.model(codes, tie_heads=True)
    load_checkpoint(saved, restored)
    for i in range(len(tiny.vocab)):  # still one matrix after loading, and the trained one
        assert restored.heads[i]._emb[0].weight is restored.code_emb[i].weight
        assert torch.equal(restored.code_emb[i].weight, model.code_emb[i].weight)
    batch = tiny.batch(len(codes), b=3)
    model.eval(), restored.eval()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    a, b = beam_search(model, batch, trie, beam=8, topk=5), beam_search(restored, batch, trie, beam=8, topk=5)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_configs_saved_before_tied_heads_load_untied(tiny):
    saved = asdict(tiny.model(tiny.catalogue(), tie_heads=True).cfg)
    assert GeneratorConfig.from_saved(saved).tie_heads is True
    saved.pop("tie_heads")
    assert GeneratorConfig.from_saved(saved).tie_heads is False
