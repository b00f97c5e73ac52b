"""The per-item input vector of #15 (``item_id_emb``): it starts at zero, so the model begins as the semantic-ID
model; without a dense head training moves only the rows of items that were inputs, with one it is also each item's
dense output vector (tied, as SASRec's); configs saved before it load with it off."""

from dataclasses import asdict

import torch

from oxy_dagster.model.config import GeneratorConfig


def test_the_item_vector_starts_at_zero_and_learns_only_for_input_items(tiny):
    codes = tiny.catalogue()
    batch = tiny.batch(len(codes), b=2)
    # without a dense head: its catalogue-wide softmax reaches every item's vector, not only the inputs'
    with_id = tiny.model(codes, q2i_weight=0.0, item_id_emb=True, dense_weight=0.0)
    plain = tiny.model(codes, q2i_weight=0.0, dense_weight=0.0, item_id_emb=False, dense_free_items=False)
    assert with_id.id_emb.weight.shape == (len(codes) + 1, with_id.cfg.d_model)
    missing = plain.load_state_dict(with_id.state_dict(), strict=False)
    assert missing.unexpected_keys == ["id_emb.weight"] and not missing.missing_keys
    with_id.eval(), plain.eval()
    assert torch.allclose(with_id(batch)["loss"], plain(batch)["loss"], atol=1e-6)  # zero at the start

    with_id.train()
    opt = torch.optim.SGD(with_id.parameters(), lr=1.0)
    with_id(batch)["loss"].backward()
    opt.step()
    moved = with_id.id_emb.weight.detach().abs().sum(1) > 0
    inputs = torch.zeros(len(codes) + 1, dtype=torch.bool)
    inputs[batch["short_items"].flatten()] = True  # long-history tokens are detached; the trigger is row 3
    inputs[batch["trigger"][batch["trigger"] < len(codes)]] = True
    assert moved.any() and torch.equal(moved, inputs)
    assert not moved[len(codes)]  # the padding row stays zero
    with_id.eval()
    assert not torch.allclose(with_id(batch)["loss"], plain(batch)["loss"], atol=1e-4)


def test_configs_saved_before_the_item_vector_load_without_it_and_new_ones_have_it(tiny):
    assert tiny.model(tiny.catalogue()).cfg.item_id_emb  # on by default since #15's three seeds
    saved = asdict(tiny.model(tiny.catalogue(), item_id_emb=True).cfg)
    assert GeneratorConfig.from_saved(saved).item_id_emb is True
    saved.pop("item_id_emb"), saved.pop("dense_free_items")  # a config saved before either
    assert GeneratorConfig.from_saved(saved).item_id_emb is False


def test_with_a_dense_head_the_item_vector_is_also_the_items_dense_output_vector(tiny):
    codes = tiny.catalogue()
    batch = tiny.batch(len(codes), b=2)
    model = tiny.model(codes, q2i_weight=0.0, item_id_emb=True, dense_weight=1.0)
    before = model.item_vectors().detach()
    delta = torch.randn(len(codes), model.cfg.d_model)
    with torch.no_grad():
        model.id_emb.weight[:-1] += delta
    assert torch.allclose(model.item_vectors().detach() - before, delta, atol=1e-5)  # the dense vector holds it
    model(batch)["loss"].backward()
    grad = model.id_emb.weight.grad.abs().sum(1) > 0
    seen = torch.zeros(len(codes) + 1, dtype=torch.bool)
    seen[batch["short_items"].flatten()] = True
    seen[batch["target"]] = True
    seen[batch["trigger"][batch["trigger"] < len(codes)]] = True
    assert grad[:-1][~seen[:-1]].all()  # the catalogue-wide softmax reaches items neither input nor target


def test_dense_free_items_scores_items_by_their_per_item_vector_alone(tiny):
    """``dense_free_items``: the dense head's item vectors are the per-item vectors only, so two items sharing every
    code and side feature score apart by their own vectors; the inputs keep the whole embedding; it needs the vector."""
    import pytest

    codes = tiny.catalogue()
    batch = tiny.batch(len(codes), b=3)
    model = tiny.model(codes, q2i_weight=0.0, item_id_emb=True, dense_weight=1.0, dense_free_items=True)
    with torch.no_grad():
        model.id_emb.weight[:-1] = torch.randn(len(codes), model.cfg.d_model)
    assert torch.equal(model.item_vectors(), model.id_emb.weight[:-1])
    whole = model.item_embedding(torch.arange(len(codes))) + model.item_text_proj(model.item_text[:-1])
    assert not torch.allclose(whole, model.item_vectors())  # the codes and text are left out of the output side
    assert not torch.allclose(model.item_embedding(torch.tensor([5]))[0], model.id_emb.weight[5])  # input: whole
    model(batch)["loss"].backward()
    assert model.code_emb[0].weight.grad is not None and model.id_emb.weight.grad[:-1].abs().sum(1).gt(0).all()
    with pytest.raises(ValueError, match="item_id_emb"):
        GeneratorConfig(item_id_emb=False, dense_free_items=True)
    assert GeneratorConfig.from_saved({"code_vocab": [4, 4]}).dense_free_items is False
