"""``dense_exclude_history``: the dense loss's softmax leaves each sample's history items out of its negatives
(the target kept even where the user had it before); inference scores every item as before."""

import torch

from oxy_dagster.model.config import GeneratorConfig


def by_hand(model, batch, leave_out_history: bool) -> torch.Tensor:
    """The weighted dense NLL computed from the decoder state, with the history masked by hand."""
    instr, query = model.instruction(batch)
    memory, mask, _ = model.encode(batch, query)
    h, _ = model.decode(model.prefix(instr), memory, mask)
    logits = model.dense_proj(h[:, -1]) @ model.item_vectors().T
    if leave_out_history:
        for row in range(len(logits)):
            history = set(batch["short_items"][row].tolist()) | set(batch["long_items"][row].tolist())
            history.discard(int(batch["target"][row]))
            history.discard(model.pad_item)
            logits[row, sorted(history)] = float("-inf")
    nll = torch.nn.functional.cross_entropy(logits, batch["target"], reduction="none")
    return (nll * batch["weight"]).sum() / batch["weight"].sum()


def test_the_dense_loss_leaves_history_items_out_of_its_softmax_and_keeps_the_target(tiny):
    codes = tiny.catalogue()
    model = tiny.model(codes, dense_weight=0.5, q2i_weight=0.0, item_id_emb=True,
                       dense_exclude_history=True).eval()
    batch = tiny.batch(len(codes), b=6)
    batch["short_items"][0, 7] = batch["target"][0]  # a user who had the target before: it stays the label
    batch["long_items"][1, :4] = model.pad_item  # padding is no item
    batch["weight"] = torch.tensor([1.0, 2.0, 1.0, 3.0, 1.0, 1.0])
    out = model(batch)
    assert torch.isfinite(out["loss"])
    assert torch.allclose(out["dense"], by_hand(model, batch, True), atol=1e-5)
    # the same weights with the option off: the full softmax, a larger loss (more negatives)
    full = by_hand(model, batch, False)
    model.cfg.dense_exclude_history = False
    assert torch.allclose(model(batch)["dense"], full, atol=1e-5)
    assert float(full.detach()) > float(out["dense"].detach()) + 1e-3
    # inference is unchanged: dense_logp without leave_out scores every item
    instr, query = model.instruction(batch)
    memory, mask, _ = model.encode(batch, query)
    h, _ = model.decode(model.prefix(instr), memory, mask)
    assert torch.isfinite(model.dense_logp(h[:, -1])).all()


def test_a_later_target_in_the_history_is_left_out_of_the_ahead_loss_and_gradients_stay_finite(tiny):
    codes = tiny.catalogue()
    model = tiny.model(codes, dense_weight=0.5, q2i_weight=0.0, dense_ahead=2, dense_exclude_history=True)
    batch = tiny.batch(len(codes), b=4)
    later = batch["short_items"][:, 4]  # every later target is one the user already had
    batch["target"] = (later + 1) % len(codes)
    batch["ahead"] = torch.stack([later, torch.full((4,), model.pad_item)], 1)
    out = model(batch)
    assert float(out["dense_ahead"]) == 0.0  # each left out: nothing to learn there
    out["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_old_configs_load_with_the_option_off():
    assert GeneratorConfig().dense_exclude_history is False
    saved = {k: v for k, v in GeneratorConfig().__dict__.items() if k != "dense_exclude_history"}
    assert GeneratorConfig.from_saved(saved).dense_exclude_history is False
