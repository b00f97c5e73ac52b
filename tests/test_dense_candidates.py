"""Dense candidates (LIGER's hybrid retrieval, ``GeneratorConfig.dense_candidates``): the dense head's best items
outside the beam and the excluded join the beam's candidates, each scored by its whole code path exactly as an
exhaustive beam scores it; the reference decoder, the serving decoder, an ensemble and the benchmarks' scoring agree."""

import numpy as np
import pytest
import torch

from benchmarks.beauty_eval import candidates, ranked
from oxy_dagster.model.config import GeneratorConfig
from oxy_dagster.model.decoding import beam_search, encode_users, first_state, join_dense_candidates
from oxy_dagster.model.ensemble import GeneratorEnsemble
from oxy_dagster.model.fast_decoding import BeamDecoder
from oxy_dagster.model.trie import CodeTrie, DenseTrie


def exhaustive(model, batch, trie):
    """Every item's generation log-probability per row, from a beam wide enough to keep every code path."""
    items, scores = beam_search(model, batch, trie, beam=256, topk=256, dense_mix=0.0, dense_candidates=0)
    return [dict(zip(i.tolist(), s.tolist())) for i, s in zip(items, scores)]


def check_joined(model, batch, trie, exclude, n=3, beam=2):
    enc = encode_users(model, batch)
    items, scores = beam_search(model, batch, trie, beam=beam, topk=beam, dense_mix=0.0, exclude=exclude, enc=enc,
                                dense_candidates=0)
    state = first_state(model, enc)
    joined, joined_scores = join_dense_candidates(model, batch, enc, state, items, scores, exclude, n)
    assert torch.equal(joined[:, :beam], items) and torch.equal(joined_scores[:, :beam], scores)
    extra = joined[:, beam:]
    dense = model.dense_logp(state)
    full = exhaustive(model, batch, trie)
    for r in range(len(items)):
        taken = set(items[r].tolist()) | set(exclude[r].tolist())
        outside = [i for i in dense[r].argsort(descending=True).tolist() if i not in taken]
        assert extra[r].tolist() == outside[:n]  # the dense head's best items outside the beam and the excluded
        for item, s in zip(extra[r].tolist(), joined_scores[r, beam:].tolist()):
            assert s == pytest.approx(full[r][item], abs=1e-4)  # its code path's log-probability, as the beam's
    return joined, joined_scores


def test_dense_candidates_are_the_dense_heads_best_items_outside_the_beam_scored_by_their_code_path(tiny):
    codes = tiny.catalogue()
    model = tiny.model(codes, dense_weight=1.0, dense_mix=0.0).eval()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    batch = tiny.batch(len(codes), b=5)
    exclude = torch.tensor([[0, 1], [2, len(codes)], [3, 4], [5, 6], [len(codes), len(codes)]])  # pad: no item
    joined, joined_scores = check_joined(model, batch, trie, exclude)
    # beam_search joins them itself, then ranks beam and dense candidates together by the final score
    got, got_scores = beam_search(model, batch, trie, beam=2, topk=4, exclude=exclude, dense_mix=2.0,
                                  dense_candidates=3)
    dense = model.dense_logp(first_state(model, encode_users(model, batch)))
    mixed = joined_scores + 2.0 * dense.gather(1, joined.clamp(min=0))
    want = mixed.topk(4, dim=1)
    assert torch.allclose(got_scores, want.values, atol=1e-4)
    assert torch.equal(got, joined.gather(1, want.indices))
    assert not torch.equal(got, beam_search(model, batch, trie, beam=2, topk=4, exclude=exclude, dense_mix=2.0)[0])
    # the model's own setting is both decoders' default
    model.cfg.dense_mix, model.cfg.dense_candidates = 2.0, 3
    fast, fast_scores = BeamDecoder(model, DenseTrie.from_trie(trie)).decode(batch, beam=2, topk=4, exclude=exclude)
    assert torch.equal(fast, got) and torch.allclose(fast_scores, got_scores, atol=1e-4)
    assert torch.equal(beam_search(model, batch, trie, beam=2, topk=4, exclude=exclude)[0], got)


def test_an_ensemble_scores_dense_candidates_by_its_joint_code_path(tiny):
    codes = tiny.catalogue()
    torch.manual_seed(1)
    members = [tiny.model(codes, dense_weight=1.0, dense_mix=0.0).eval() for _ in range(2)]
    ens = GeneratorEnsemble(members).eval()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    batch = tiny.batch(len(codes), b=4)
    check_joined(ens, batch, trie, torch.full((4, 1), len(codes)))


def test_the_fast_decoder_joins_an_ensembles_dense_candidates_without_encoding_the_users_again(tiny):
    codes = tiny.catalogue()
    torch.manual_seed(2)
    members = [tiny.model(codes, dense_weight=1.0, dense_mix=1.0, dense_candidates=3).eval() for _ in range(2)]
    ens = GeneratorEnsemble(members).eval()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    batch = tiny.batch(len(codes), b=4)
    exclude = torch.tensor([[0, 1], [2, len(codes)], [3, 4], [len(codes), len(codes)]])
    want, want_scores = beam_search(ens, batch, trie, beam=2, topk=5, exclude=exclude)
    decoder = BeamDecoder(ens, DenseTrie.from_trie(trie))
    calls = []
    for m in members:  # the decoder's own encoder runs are bound at construction; any later encode is a repeat
        m.encode = lambda *a, _f=m.encode, **k: calls.append(1) or _f(*a, **k)
    got, got_scores = decoder.decode(batch, beam=2, topk=5, exclude=exclude)
    assert calls == []
    assert torch.equal(got, want) and torch.allclose(got_scores, want_scores, atol=1e-4)
    assert not torch.equal(got, beam_search(ens, batch, trie, beam=2, topk=5, exclude=exclude, dense_candidates=0)[0])


def test_the_benchmark_reads_each_protocol_from_its_own_candidate_list(tiny):
    codes = tiny.catalogue()
    data = tiny.data(codes, n=24)
    model = tiny.model(codes, dense_weight=1.0, dense_mix=1.0).eval()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    rows = np.arange(len(data))
    base = candidates(model, data, trie, rows, beam=2)
    model.cfg.dense_candidates = 3
    c = candidates(model, data, trie, rows, beam=2)
    width = base["items"].shape[1]
    assert c["items"].shape[1] == c["plain_items"].shape[1] == width + 3
    assert torch.equal(c["items"][:, :width], base["items"]) and torch.equal(c["plain_items"][:, :width], base["items"])
    assert not c["seen"][:, width:].any()  # the filtered list's dense candidates are never history items
    # each protocol's ranking is the decoder's own: beam_search with the history excluded, and without
    hist = torch.cat([data.tensors["short_items"], data.tensors["long_items"]], 1)[rows]
    batch = data.batch(rows)
    want = beam_search(model, batch, trie, beam=2, topk=10, exclude=hist)[0]
    assert np.array_equal(ranked(c, 1.0, True, k=10), want.numpy())
    want_plain = beam_search(model, batch, trie, beam=2, topk=12)[0][:, :10]  # the 12 items two beams can end in
    assert np.array_equal(ranked(c, 1.0, False, k=10), want_plain.numpy())


def test_dense_candidates_are_checked_and_off_in_a_config_saved_before_them():
    with pytest.raises(ValueError, match="dense_candidates"):
        GeneratorConfig(dense_candidates=-1)
    assert GeneratorConfig.from_saved({"code_vocab": [4, 4]}).dense_candidates == 0
