"""``dense_interleave``: the beam's ranked list merged with the dense head's own ranking of the catalogue, the same
in the reference beam search, the serving decoder, an ensemble and the benchmarks' scoring."""

import copy
from dataclasses import replace

import pytest
import torch

from oxy_dagster.model.config import GeneratorConfig
from oxy_dagster.model.decoding import beam_search, encode_users, first_state, merge_ranked
from oxy_dagster.model.ensemble import GeneratorEnsemble
from oxy_dagster.model.fast_decoding import BeamDecoder
from oxy_dagster.model.trie import CodeTrie, DenseTrie


def test_merge_places_the_second_lists_items_by_weight():
    first = torch.arange(10, 20)[None]  # items 10..19, best first
    second = torch.tensor([[1, 2, 3, 4]])
    items, scores = merge_ranked(first, second, 0.5)
    assert items[0].tolist() == [10, 11, 12, 1, 13, 14, 2, 15, 16, 3]  # a tie goes to the first list
    assert (scores[0, :-1] >= scores[0, 1:]).all()
    assert merge_ranked(first, second, 0.3)[0][0].tolist() == [10, 11, 12, 13, 14, 1, 15, 16, 17, 18]  # the default
    # an item in both lists keeps its better place and is not repeated; padding (-1) never outranks an item
    items, _ = merge_ranked(torch.tensor([[5, 6, 7, -1, -1]]), torch.tensor([[7, 8, -1, -1, -1]]), 0.5)
    assert items[0].tolist() == [5, 6, 7, 8, -1]
    # the top k of the merge of two longer lists is the merge of their first k (a served k reads the same head)
    torch.manual_seed(0)
    a, b = torch.randperm(40)[None, :20], torch.randperm(40)[None, :20]
    assert torch.equal(merge_ranked(a, b, 0.5)[0][:, :7], merge_ranked(a[:, :7], b[:, :7], 0.5)[0])
    # weight 1: the two lists alternate, the first list's item first
    assert merge_ranked(torch.tensor([[1, 2, 3]]), torch.tensor([[4, 5, 6]]), 1.0)[0][0].tolist() == [1, 4, 2]


def _dense_top(model, batch, exclude, k):
    dense = model.dense_logp(first_state(model, encode_users(model, batch)))
    if exclude is not None:
        dense = dense.scatter(1, exclude.clamp(max=dense.shape[1] - 1), float("-inf"))
    return dense.topk(k, dim=1).indices


@pytest.mark.parametrize("members", [1, 2])
def test_beam_search_and_the_serving_decoder_interleave_the_dense_heads_ranking(tiny, members):
    codes = tiny.catalogue()
    models = [tiny.model(codes, dense_weight=1.0) for _ in range(members)]  # tiny_model: interleave off
    with torch.no_grad():
        for i, m in enumerate(models[1:], 1):
            m.id_emb.weight.mul_(-1.0 * i)  # another member ranks otherwise
    model = GeneratorEnsemble(models).eval() if members > 1 else models[0].eval()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    batch = tiny.batch(len(codes), b=5)
    seen = batch["short_items"][:, -6:]
    beam_list, _ = beam_search(model, batch, trie, beam=32, topk=10, exclude=seen)
    got, scores = beam_search(model, batch, trie, beam=32, topk=10, exclude=seen, dense_interleave=0.5)
    want = merge_ranked(beam_list, _dense_top(model, batch, seen, 10), 0.5)[0]
    assert torch.equal(got, want)
    assert not torch.equal(got, beam_list)  # the dense head's list changed something
    assert not (got[:, :, None] == seen[:, None, :]).any()  # the history filter holds for both lists
    assert all(len(set(r)) == len(r) for r in got.tolist()) and ((got >= 0) & (got < len(codes))).all()
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    model.cfg = replace(model.cfg, dense_interleave=0.5)  # the served model's own setting
    assert torch.equal(beam_search(model, batch, trie, beam=32, topk=10, exclude=seen)[0], got)
    fast = BeamDecoder(model, DenseTrie.from_trie(trie))
    assert torch.equal(fast.decode(batch, beam=32, topk=10, exclude=seen)[0], got)


def test_the_benchmarks_scoring_interleaves_as_evaluate_does(trained_tiny):
    from benchmarks.beauty_eval import split_figures as figures_of_one_beam
    from oxy_dagster.model.data import SampleTensors
    from oxy_dagster.model.evaluate import evaluate

    model, codes, data, trie = trained_tiny
    model = copy.deepcopy(model)  # the fixture is shared
    test = SampleTensors(data.tensors, data.meta.assign(split="test"), 0, [])
    before = figures_of_one_beam(model, test, trie, codes, 16)
    model.cfg = replace(model.cfg, dense_interleave=0.5)
    got = figures_of_one_beam(model, test, trie, codes, 16)
    for exclude, figures in ((True, got), (False, got["plain"])):
        want = evaluate(model, test, trie, codes, split="test", beam=16, exclude_history=exclude, progress=False)
        for k in ("recall@10", "ndcg@10", "recall@20", "ndcg@20"):
            assert figures[k] == pytest.approx(want[k], abs=1e-5), (exclude, k)
    assert got["ndcg@20"] != before["ndcg@20"]  # the merge reached the figures


def test_the_weight_is_checked_and_old_models_load_without_it():
    with pytest.raises(ValueError, match="dense_interleave"):
        GeneratorConfig(dense_interleave=1.5)
    saved = {k: v for k, v in vars(GeneratorConfig()).items() if k != "dense_interleave"}
    assert GeneratorConfig.from_saved(saved).dense_interleave == 0.0  # decoded as it was trained and measured
    assert GeneratorConfig().dense_interleave == 0.3  # chosen on validation (beauty_interleave)
