"""GeneratorConfig.last_item_trigger: a sample without a trigger item takes its most recent history item as the
instruction's trigger (FPMC's last-item transition, handed to the decoder's first state); one with a trigger keeps
it."""

from dataclasses import replace

import torch

from oxy_dagster.model.config import GeneratorConfig
from oxy_dagster.model.decoding import beam_search
from oxy_dagster.model.trie import CodeTrie


def test_a_sample_without_a_trigger_takes_its_last_history_item(tiny):
    codes = tiny.catalogue()
    pad = len(codes)
    model = tiny.model(codes).eval()
    batch = tiny.batch(pad, b=6)
    batch["short_items"][5, -1] = pad  # a history whose last column is padding: no item to take
    off_tokens, off_query = model.instruction(batch)
    model.cfg = replace(model.cfg, last_item_trigger=True)
    on_tokens, on_query = model.instruction(batch)
    has_trigger = batch["trigger"] != pad
    by_hand = {**batch, "trigger": torch.where(has_trigger, batch["trigger"], batch["short_items"][:, -1])}
    model.cfg = replace(model.cfg, last_item_trigger=False)
    want_tokens, want_query = model.instruction(by_hand)  # the same as naming the last item as the trigger
    assert torch.allclose(on_query, want_query) and all(torch.allclose(a, b) for a, b in zip(on_tokens, want_tokens))
    keeps = has_trigger.clone()
    keeps[5] = True  # no trigger and no last item: the default trigger, as without the option
    assert torch.allclose(on_query[keeps], off_query[keeps])
    assert not torch.allclose(on_query[~keeps], off_query[~keeps], atol=1e-4)


def test_the_option_reaches_decoding_and_old_configs_load_without_it(tiny):
    codes = tiny.catalogue()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    batch = tiny.batch(len(codes), b=8)
    batch["trigger"][:] = len(codes)  # no sample has a trigger
    model = tiny.model(codes).eval()
    off = beam_search(model, batch, trie, beam=8, topk=5)
    model.cfg = replace(model.cfg, last_item_trigger=True)
    on = beam_search(model, batch, trie, beam=8, topk=5)
    assert not torch.allclose(on[1], off[1])
    saved = {k: v for k, v in vars(GeneratorConfig(last_item_trigger=True)).items() if k != "last_item_trigger"}
    assert GeneratorConfig.from_saved(saved).last_item_trigger is False
