"""The graph-replayed decoder gives ``BeamDecoder``'s lists: its padded encoder memory changes no score, for one
generator and an ensemble, with history exclusion; the CUDA-graph replay itself is compared on a GPU."""

import pytest
import torch

from oxy_dagster.model.ensemble import GeneratorEnsemble
from oxy_dagster.model.fast_decoding import BeamDecoder
from oxy_dagster.model.graphed_decoding import GraphedBeamDecoder
from oxy_dagster.model.trie import CodeTrie, DenseTrie


def _decoders(tiny, model, codes):
    eager = BeamDecoder(model, DenseTrie.from_trie(CodeTrie.build(codes, list(tiny.vocab))))
    return eager, GraphedBeamDecoder(eager)


def _short_histories(tiny, n_items: int, b: int, seed: int = 0, pad_columns: int = 7) -> dict:
    """A batch whose first ``pad_columns`` history columns are padding in every row: the encoder drops them, so its
    memory is shorter than the longest the model can produce."""
    batch = tiny.batch(n_items, b=b, seed=seed)
    batch["short_items"][:, :pad_columns] = n_items
    return batch


def _same_lists(got, want):
    assert torch.equal(got[0], want[0])
    assert torch.allclose(got[1], want[1], atol=1e-5)


@pytest.mark.parametrize("beam", [8, 64])
def test_padded_memory_gives_the_decoders_lists(tiny, beam):
    codes = tiny.catalogue()
    model = tiny.model(codes).eval()
    assert model.cfg.dense_weight > 0 and model.cfg.dense_mix > 0  # the dense mix is part of what is compared
    eager, graphed = _decoders(tiny, model, codes)
    batch = _short_histories(tiny, len(codes), b=5)
    assert eager._start(0, batch)["mem_bias"].shape[-1] < graphed.max_memory  # the padding is exercised
    seen = batch["short_items"][:, -4:]
    _same_lists(graphed.decode(batch, beam=beam, topk=10, exclude=seen),
                eager.decode(batch, beam=beam, topk=10, exclude=seen))
    _same_lists(graphed.decode(batch, beam=beam, topk=10), eager.decode(batch, beam=beam, topk=10))


def test_an_ensemble_decodes_as_the_serving_decoder(tiny):
    codes = tiny.catalogue()
    a = tiny.model(codes).eval()
    torch.manual_seed(1)
    b = tiny.model(codes, d_model=32, n_heads=2, placement="left_bos", igr_k=4).eval()
    for p in b.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    eager, graphed = _decoders(tiny, GeneratorEnsemble([a, b]), codes)
    assert graphed.max_memory == 1 + 20 + 8  # the longest member's memory
    batch = _short_histories(tiny, len(codes), b=4, pad_columns=3)
    _same_lists(graphed.decode(batch, beam=32, topk=10), eager.decode(batch, beam=32, topk=10))


def test_dense_candidates_fall_back_to_the_serving_decoder(tiny):
    codes = tiny.catalogue()
    eager, graphed = _decoders(tiny, tiny.model(codes, dense_candidates=5).eval(), codes)
    batch = tiny.batch(len(codes), b=3)
    _same_lists(graphed.decode(batch, beam=4, topk=8), eager.decode(batch, beam=4, topk=8))


def test_refusals_name_their_cause(tiny):
    codes = tiny.catalogue()
    eager, _ = _decoders(tiny, tiny.model(codes).eval(), codes)
    with pytest.raises(ValueError, match="CUDA graphs need the model on a GPU"):
        GraphedBeamDecoder(eager, graphs=True)
    moe, _ = _decoders(tiny, tiny.model(codes, n_experts=4, top_k_experts=2).eval(), codes)
    with pytest.raises(ValueError, match="MoE decoder"):
        GraphedBeamDecoder(moe, graphs=True)
    short = GraphedBeamDecoder(eager, max_memory=5)
    with pytest.raises(ValueError, match="more than the 5"):
        short.decode(tiny.batch(len(codes), b=2), beam=4, topk=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_graph_replay_gives_the_eager_lists_on_a_gpu(tiny):
    codes = tiny.catalogue()
    model = tiny.model(codes).eval().cuda()
    trie = DenseTrie.from_trie(CodeTrie.build(codes, list(tiny.vocab)))
    eager = BeamDecoder(model, DenseTrie(trie.levels, trie.vocab, [t.cuda() for t in trie.child]))
    graphed = GraphedBeamDecoder(eager)
    assert graphed.graphs
    for seed, pad in ((0, 7), (1, 2)):  # the second batch replays the first one's graph with new inputs
        batch = _short_histories(tiny, len(codes), b=4, seed=seed, pad_columns=pad)
        batch = {k: v.cuda() for k, v in batch.items()}
        seen = batch["short_items"][:, -3:]
        got = graphed.decode(batch, beam=64, topk=10, exclude=seen)
        with torch.device("cuda"):  # the eager decoder creates its tensors on the default device
            want = eager.decode(batch, beam=64, topk=10, exclude=seen)
        _same_lists(got, want)
    assert len(graphed.captured) == 1
