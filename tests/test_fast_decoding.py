"""The serving beam search (grouped beams, dense trie, beam-step kernel) gives the reference beam search's
results, and beam sampling stays inside the trie."""

import numpy as np
import pytest
import torch

from oxy_dagster.model.config import PLACEMENTS
from oxy_dagster.model.decoding import beam_search
from oxy_dagster.model.ensemble import GeneratorEnsemble
from oxy_dagster.model.fast_decoding import BeamDecoder, SampleConfig
from oxy_dagster.model.trie import CodeTrie, DenseTrie


def _setup(tiny, **overrides):
    codes = tiny.catalogue()
    model = tiny.model(codes, **overrides).eval()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    return codes, model, trie, BeamDecoder(model, DenseTrie.from_trie(trie))


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("beam", [4, 64, 512])
def test_fast_beam_search_equals_the_reference(tiny, placement, beam):
    codes, model, trie, fast = _setup(tiny, placement=placement)
    batch = tiny.batch(len(codes), b=5)
    want_items, want_scores = beam_search(model, batch, trie, beam=beam, topk=10)
    items, scores = fast.decode(batch, beam=beam, topk=10)
    assert torch.equal(items, want_items)
    assert torch.allclose(scores, want_scores, atol=1e-4)


def test_fast_beam_search_with_moe_pools_and_history_exclusion(tiny):
    codes, model, trie, fast = _setup(tiny, n_experts=4, top_k_experts=2)
    batch = tiny.batch(len(codes), b=4)
    seen = torch.cat([batch["short_items"][:, -5:], torch.full((4, 2), len(codes))], 1)
    want = beam_search(model, batch, trie, beam=64, topk=10, exclude=seen)
    got = fast.decode(batch, beam=64, topk=10, exclude=seen)
    assert torch.equal(got[0], want[0]) and torch.allclose(got[1], want[1], atol=1e-4)
    pool = np.arange(0, len(codes), 5)
    ptrie, rows = trie.restrict(codes, pool)
    want = beam_search(model, batch, ptrie, beam=16, topk=len(pool) + 3, leaf_rows=torch.from_numpy(rows))
    got = BeamDecoder(model, DenseTrie.from_trie(ptrie)).decode(batch, beam=16, topk=len(pool) + 3,
                                                                 leaf_rows=torch.from_numpy(rows))
    assert torch.equal(got[0], want[0]) and set(got[0][got[0] >= 0].tolist()) <= set(pool.tolist())


def test_beam_sampling_is_seeded_valid_and_more_diverse(tiny):
    codes, model, trie, fast = _setup(tiny)
    batch = tiny.batch(len(codes), b=6)
    greedy, _ = fast.decode(batch, beam=8, topk=8)
    runs = [fast.decode(batch, beam=8, topk=8, mode="sample", sample=SampleConfig(temperature=1.5, seed=s))
            for s in (0, 0, 1)]
    assert torch.equal(runs[0][0], runs[1][0])  # same seed, same lists
    assert not torch.equal(runs[0][0], runs[2][0])  # another seed, other lists
    for items, scores in runs:
        assert ((items >= 0) & (items < len(codes))).all()  # every sampled item exists
        assert (scores[:, :-1] >= scores[:, 1:]).all()  # ordered by the model's log-probability
    # scores are the model's true log-probabilities: the same item scores the same in greedy and sampled lists
    g_items, g_scores = fast.decode(batch, beam=150, topk=150)
    item, score = runs[0][0][0, 0], runs[0][1][0, 0]
    assert score == pytest.approx(g_scores[0][g_items[0] == item].item(), abs=1e-4)
    # top-k 1 at temperature 1 is greedy per level: the sampled beams are then a deterministic beam search
    narrow, _ = fast.decode(batch, beam=1, topk=1, mode="sample", sample=SampleConfig(top_k=1, seed=3))
    assert torch.equal(narrow[:, 0], fast.decode(batch, beam=1, topk=1)[0][:, 0])
    with pytest.raises(ValueError, match="mode must be"):
        fast.decode(batch, mode="greedy")


def _ensemble(tiny, codes):
    """Two members of different widths, the second perturbed so it ranks differently from the first."""
    a = tiny.model(codes, q2i_weight=0.0).eval()
    torch.manual_seed(1)
    b = tiny.model(codes, q2i_weight=0.0, d_model=32, n_heads=2, placement="left_bos").eval()
    for p in b.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    return GeneratorEnsemble([a, b])


@pytest.mark.parametrize("beam", [4, 64])
def test_fast_beam_search_decodes_an_ensemble_as_the_reference(tiny, beam):
    """The service decodes a ``GeneratorEnsemble`` (the benchmark's members) as ``beam_search`` does: each member
    runs its own layers on the shared beams, a level is chosen by the members' mean log-softmax."""
    codes = tiny.catalogue()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    ens = _ensemble(tiny, codes)
    fast = BeamDecoder(ens, DenseTrie.from_trie(trie))
    batch = tiny.batch(len(codes), b=5)
    seen = batch["short_items"][:, -3:]
    want_items, want_scores = beam_search(ens, batch, trie, beam=beam, topk=10, exclude=seen)
    items, scores = fast.decode(batch, beam=beam, topk=10, exclude=seen)
    assert torch.equal(items, want_items)
    assert torch.allclose(scores, want_scores, atol=1e-4)
    alone, _ = BeamDecoder(ens.members[0], DenseTrie.from_trie(trie)).decode(batch, beam=beam, topk=10, exclude=seen)
    assert not torch.equal(alone, items)  # the second member moved the lists
    sampled, s_scores = fast.decode(batch, beam=8, topk=8, mode="sample", sample=SampleConfig(temperature=1.5))
    assert ((sampled >= 0) & (sampled < len(codes))).all() and (s_scores[:, :-1] >= s_scores[:, 1:]).all()
    full_items, full_scores = fast.decode(batch, beam=len(codes), topk=len(codes))
    assert torch.allclose(s_scores[0, 0], full_scores[0][full_items[0] == sampled[0, 0]], atol=1e-4)


def test_dense_trie_agrees_with_the_csr_trie(tiny):
    codes = tiny.catalogue()
    trie = CodeTrie.build(codes, list(tiny.vocab))
    dense = DenseTrie.from_trie(trie)
    for lvl in range(trie.levels):
        every_prefix = torch.arange(dense.child[lvl].shape[0])
        assert torch.equal(dense.child[lvl] >= 0, trie.allowed_mask(lvl, every_prefix))
    assert sorted(dense.child[-1][dense.child[-1] >= 0].tolist()) == list(range(len(codes)))
    with pytest.raises(ValueError, match="exceeds"):
        DenseTrie.from_trie(trie, max_entries=10)


def test_naive_baseline_returns_the_same_lists(tiny):
    """The serving benchmark's naive baseline (no cache, per-beam callback masks) does the same work."""
    from benchmarks.naive_decoding import naive_beam_search, prefix_allowed_fn

    codes, model, _, fast = _setup(tiny)
    batch = tiny.batch(len(codes), b=3)
    allowed, item_of = prefix_allowed_fn(codes), {tuple(c): i for i, c in enumerate(codes.tolist())}
    items, scores = fast.decode(batch, beam=32, topk=10)
    for u in range(3):
        one = {k: v[u:u + 1] for k, v in batch.items()}
        n_items, n_scores = naive_beam_search(model, one, allowed, item_of, beam=32, topk=10)
        assert torch.equal(n_items, items[u]) and torch.allclose(n_scores, scores[u], atol=1e-4)


@pytest.mark.slow
def test_compiled_decoder_returns_the_eager_lists(tiny):
    codes, model, _, eager = _setup(tiny)
    compiled = BeamDecoder(model, eager.trie, compile=True)
    batch = tiny.batch(len(codes), b=3)  # one shape: compiling costs minutes on 2 cores
    want_items, want_scores = eager.decode(batch, beam=16, topk=10)
    items, scores = compiled.decode(batch, beam=16, topk=10)
    assert torch.equal(items, want_items)
    assert torch.allclose(scores, want_scores, atol=1e-4)
