"""GeneratorEnsemble: several generators decoded as one by trie-constrained beam search (issue #15's ensemble);
CodebookEnsemble: generators over different SID codebooks of one catalogue, each beam proposing, all scoring."""

import pytest
import torch

from oxy_dagster.model.decoding import beam_search, path_logp
from oxy_dagster.model.ensemble import CodebookEnsemble, GeneratorEnsemble, unique_rows
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
        per_member, dense = [], []
        for m in (a, b):
            h, target, _, _ = m.teacher_forced(probe)
            per_member.append([torch.log_softmax(head(h[:, i]), -1) for i, head in enumerate(m.heads)])
            dense.append(m.dense_logp(h[:, 0]).gather(1, items[:, col:col + 1]).squeeze(1))  # the default head
        want = sum(torch.log_softmax((pa + pb) / 2, -1).gather(1, target[:, i:i + 1]).squeeze(1)
                   for i, (pa, pb) in enumerate(zip(*per_member)))
        want = want + ens.cfg.dense_mix * (dense[0] + dense[1]) / 2
        assert torch.allclose(scores[:, col], want, atol=1e-4)
    alone, _ = beam_search(a, batch, trie, beam=len(codes), topk=12)
    assert not torch.equal(alone, items)  # the second member moved the ranking


def test_the_ensembles_encoding_splits_into_each_members_own(tiny):
    """split_encoding: a caller that encodes the users once for the joint beam reads each member's encoding out
    of it, and a member decodes from it as from its own (the padding to the widest member is masked)."""
    from oxy_dagster.model.decoding import encode_users

    codes = tiny.catalogue()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    batch = tiny.batch(len(codes), b=5)
    a, b = _members(tiny, codes)
    ens = GeneratorEnsemble([a, b])
    for m, got in zip((a, b), ens.split_encoding(encode_users(ens, batch))):
        want = encode_users(m, batch)
        assert torch.allclose(got[1], want[1]) and len(got[0]) == len(want[0])
        assert all(torch.allclose(g, w) for g, w in zip(got[0], want[0]))  # the instruction tokens
        keys = want[2].shape[1]
        assert torch.allclose(got[2][:, :keys], want[2], atol=1e-6) and torch.equal(got[3][:, :keys], want[3])
        assert got[3][:, keys:].all()  # any padding beyond the member's own keys is masked
        mine = beam_search(m, batch, trie, beam=8, topk=5, enc=got)
        alone = beam_search(m, batch, trie, beam=8, topk=5)
        assert torch.equal(mine[0], alone[0]) and torch.allclose(mine[1], alone[1], atol=1e-5)
    enc = encode_users(ens, batch)  # join_encodings inverts it, from each member's own encoding
    joined = ens.join_encodings([encode_users(m, batch) for m in (a, b)])
    assert all(torch.allclose(x, y) for x, y in zip(joined[1:], enc[1:])) and len(joined[0]) == len(enc[0])


def test_members_must_share_the_catalogue(tiny):
    codes = tiny.catalogue()
    a = tiny.model(codes)
    b = tiny.model(codes, code_vocab=(6, 6, 7, 1))
    with pytest.raises(ValueError, match="member 1 has code vocabularies"):
        GeneratorEnsemble([a, b])


def test_path_logp_is_the_score_beam_search_gives_an_item(tiny):
    codes = tiny.catalogue()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    batch = tiny.batch(len(codes), b=5)
    model = tiny.model(codes, q2i_weight=0.0).eval()
    items, scores = beam_search(model, batch, trie, beam=len(codes), topk=len(codes))  # every item, exactly scored
    assert torch.allclose(path_logp(model, batch, items), scores, atol=1e-4)
    assert torch.allclose(path_logp(model, batch, items, chunk=7), scores, atol=1e-4)  # chunking changes nothing
    some = items[:, :6].clone()
    some[:, 2] = -1
    got = path_logp(model, batch, some)
    assert torch.isneginf(got[:, 2]).all() and torch.isfinite(got[:, [0, 1, 3, 4, 5]]).all()


def _second_codebook(tiny, codes):
    """The same items under another tokenization: the code tuples dealt out to the items in another order."""
    perm = torch.randperm(len(codes), generator=torch.Generator().manual_seed(5)).numpy()
    other = codes[perm]
    torch.manual_seed(2)
    model = tiny.model(other, q2i_weight=0.0).eval()
    for p in model.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    return model, other


def test_a_codebook_ensemble_ranks_by_the_members_mean_path_log_probability(tiny):
    codes = tiny.catalogue()
    batch = tiny.batch(len(codes), b=4)
    a = tiny.model(codes, q2i_weight=0.0).eval()
    b, other = _second_codebook(tiny, codes)
    ens = CodebookEnsemble([(a, CodeTrie.build(codes, list(tiny.vocab))), (b, CodeTrie.build(other, list(tiny.vocab)))])
    exclude = batch["short_items"][:, -5:]
    items, scores = ens.search(batch, beam=len(codes), topk=12, exclude=exclude)  # beams cover the catalogue
    every = torch.arange(len(codes)).expand(4, -1)
    want = (path_logp(a, batch, every) + path_logp(b, batch, every)) / 2
    want = want.masked_fill(torch.zeros_like(want, dtype=torch.bool).scatter(1, exclude, True), float("-inf"))
    top, order = want.topk(12, dim=1)
    assert torch.equal(items, order) and torch.allclose(scores, top, atol=1e-4)
    assert not (items[:, :, None] == exclude[:, None, :]).any()
    alone, _ = beam_search(a, batch, CodeTrie.build(codes, list(tiny.vocab)), beam=len(codes), topk=12,
                           exclude=exclude)
    assert not torch.equal(alone, items)  # the member on the other codebook moved the ranking


def test_a_codebook_ensemble_keeps_only_the_union_of_its_beams(tiny):
    codes = tiny.catalogue()
    batch = tiny.batch(len(codes), b=3)
    a = tiny.model(codes, q2i_weight=0.0).eval()
    b, other = _second_codebook(tiny, codes)
    tries = CodeTrie.build(codes, list(tiny.vocab)), CodeTrie.build(other, list(tiny.vocab))
    ens = CodebookEnsemble([(a, tries[0]), (b, tries[1])])
    items, scores = ens.search(batch, beam=4, topk=10)
    proposed = torch.cat([beam_search(a, batch, tries[0], beam=4, topk=4)[0],
                          beam_search(b, batch, tries[1], beam=4, topk=4)[0]], 1)
    for row in range(3):
        kept = set(items[row][items[row] >= 0].tolist())
        assert kept == set(proposed[row].tolist())  # 4 + 4 proposals, fewer where the beams agree
    assert torch.isneginf(scores[items < 0]).all()
    assert torch.equal(unique_rows(torch.tensor([[3, -1, 3, 1]])), torch.tensor([[-1, 1, 3, -1]]))


def test_a_codebook_ensemble_encodes_each_users_history_once_per_member(tiny, monkeypatch):
    codes = tiny.catalogue()
    batch = tiny.batch(len(codes), b=3)
    a = tiny.model(codes, q2i_weight=0.0).eval()
    b, other = _second_codebook(tiny, codes)
    ens = CodebookEnsemble([(a, CodeTrie.build(codes, list(tiny.vocab))), (b, CodeTrie.build(other, list(tiny.vocab)))])
    want = ens.search(batch, beam=4, topk=6)
    calls = []
    for name, model in (("a", a), ("b", b)):
        real = model.encode
        monkeypatch.setattr(model, "encode", lambda *args, _real=real, _n=name: calls.append(_n) or _real(*args))
    got = ens.search(batch, beam=4, topk=6)
    assert sorted(calls) == ["a", "b"]  # beam search and path scoring share one encoding per member
    assert torch.equal(got[0], want[0]) and torch.allclose(got[1], want[1])
    assert not path_logp(a, batch, got[0]).requires_grad  # scoring builds no autograd graph


def test_a_codebook_ensemble_needs_one_catalogue(tiny):
    codes = tiny.catalogue()
    a = tiny.model(codes)
    trie = CodeTrie.build(codes, list(tiny.vocab))
    with pytest.raises(ValueError, match="member 1 covers 10 items"):
        CodebookEnsemble([(a, trie), (tiny.model(codes[:10]), trie)])


def test_an_ensemble_of_dense_members_mixes_their_mean_dense_log_probability(tiny):
    codes = tiny.catalogue()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    batch = tiny.batch(len(codes), b=4)
    torch.manual_seed(0)
    a = tiny.model(codes, q2i_weight=0.0, dense_weight=0.5, dense_mix=2.0).eval()
    b = tiny.model(codes, q2i_weight=0.0, dense_weight=0.5, d_model=32, n_heads=2).eval()
    for p in b.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    ens = GeneratorEnsemble([a, b])
    assert ens.cfg.dense_mix == 2.0  # the first member's mix
    items, gen = beam_search(ens, batch, trie, beam=16, topk=16, dense_mix=0.0)
    dense = []
    for m in (a, b):  # each member's dense head read by hand from its first decoder state
        instr, query = m.instruction(batch)
        memory, mask, _ = m.encode(batch, query)
        h, _ = m.decode(m.prefix(instr), memory, mask)
        dense.append(m.dense_logp(h[:, -1]).gather(1, items.clamp(min=0)))
    want = torch.where(items >= 0, gen + 2.0 * (dense[0] + dense[1]) / 2, gen)
    mixed_items, mixed = beam_search(ens, batch, trie, beam=16, topk=16)  # the ensemble's own mix
    for row in range(len(items)):  # the same candidates, re-ranked by the mix
        order = want[row].argsort(descending=True)
        assert torch.equal(mixed_items[row], items[row][order])
        assert torch.allclose(mixed[row], want[row][order], atol=1e-4)
    assert not torch.equal(mixed_items, items)  # the dense heads moved the ranking
    plain = GeneratorEnsemble([a, tiny.model(codes, q2i_weight=0.0, dense_weight=0.0).eval()])  # a member without one
    assert plain.cfg.dense_weight == 0 and plain.cfg.dense_mix == 0
