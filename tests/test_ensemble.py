"""GeneratorEnsemble: several generators decoded as one by trie-constrained beam search (issue #15's ensemble)."""

import pytest
import torch

from oxy_dagster.model.decoding import beam_search
from oxy_dagster.model.ensemble import GeneratorEnsemble
from oxy_dagster.model.trie import CodeTrie


def _members(tiny, codes):
    a = tiny.model(codes, q2i_weight=0.0).eval()
    torch.manual_seed(1)
    b = tiny.model(codes, q2i_weight=0.0, d_model=32, n_heads=2).eval()  # another width: states split by width
    for p in b.parameters():  # a different member, not a re-seeded copy
        p.data.add_(0.3 * torch.randn_like(p))
    return a, b


def test_an_ensemble_of_one_decodes_as_its_member(tiny):
    codes = tiny.catalogue()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    batch = tiny.batch(len(codes), b=5)
    model = tiny.model(codes, q2i_weight=0.0).eval()
    items, scores = beam_search(model, batch, trie, beam=16, topk=10)
    e_items, e_scores = beam_search(GeneratorEnsemble([model]), batch, trie, beam=16, topk=10)
    assert torch.equal(items, e_items)
    assert torch.allclose(scores, e_scores, atol=1e-5)


def test_the_ensemble_scores_a_path_by_the_members_mean_log_probability(tiny):
    codes = tiny.catalogue()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    batch = tiny.batch(len(codes), b=4)
    a, b = _members(tiny, codes)
    ens = GeneratorEnsemble([a, b])
    items, scores = beam_search(ens, batch, trie, beam=len(codes), topk=12)  # beam = catalogue: exact search
    assert (items >= 0).all() and (items < len(codes)).all()
    for col in (0, 5, 11):  # the ensemble's score of a returned item, by hand from each member's teacher forcing
        probe = {**batch, "target": items[:, col]}
        per_member = []
        for m in (a, b):
            h, target, _, _ = m.teacher_forced(probe)
            per_member.append([torch.log_softmax(head(h[:, i]), -1) for i, head in enumerate(m.heads)])
        want = sum(torch.log_softmax((pa + pb) / 2, -1).gather(1, target[:, i:i + 1]).squeeze(1)
                   for i, (pa, pb) in enumerate(zip(*per_member)))
        assert torch.allclose(scores[:, col], want, atol=1e-4)
    alone, _ = beam_search(a, batch, trie, beam=len(codes), topk=12)
    assert not torch.equal(alone, items)  # the second member moved the ranking


def test_members_must_share_the_catalogue(tiny):
    codes = tiny.catalogue()
    a = tiny.model(codes)
    b = tiny.model(codes, code_vocab=(6, 6, 7, 1))
    with pytest.raises(ValueError, match="member 1 has code vocabularies"):
        GeneratorEnsemble([a, b])
