"""The Beauty benchmarks score both protocols from one beam search per user (``benchmarks/beauty_eval.py``):
the history-filtered figures must be exactly those of ``evaluate(exclude_history=True)`` and the plain ones
those of ``evaluate()``, so halving the scoring time changes no number. The levers sweep refills its cache
from the committed table only for levers whose definition is unchanged."""

import json

import numpy as np
import pytest

from benchmarks.beauty_eval import split_figures as figures_of_one_beam
from oxy_dagster.model.data import SampleTensors
from oxy_dagster.model.evaluate import evaluate


@pytest.mark.parametrize("beam,split", [(8, "test"), (32, "test"), (32, "valid")])
def test_one_beam_gives_the_figures_of_the_filtered_and_the_plain_evaluation(trained_tiny, beam, split):
    model, codes, data, trie = trained_tiny
    meta = data.meta.assign(split=split)
    test = SampleTensors(data.tensors, meta, 0, [])
    got = figures_of_one_beam(model, test, trie, codes, beam, split=split)
    assert got["evaluated"] == len(data)
    for exclude, figures in ((True, got), (False, got["plain"])):
        want = evaluate(model, test, trie, codes, split=split, beam=beam, exclude_history=exclude, progress=False)
        for k in ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20", "hier_recall@20_l1",
                  "hier_recall@20_l2", "hier_recall@20_l3"):
            assert figures[k] == pytest.approx(want[k], abs=1e-5), (exclude, k)
    assert got["recall@20"] > 0 and got["recall@10"] != got["plain"]["recall@10"]  # the filter moved something


def test_popularity_correction_reranks_the_beam_by_training_count():
    """gen - alpha x log(1 + count): alpha 0 keeps the beam's order, a large alpha lifts the rare candidate."""
    import numpy as np
    import torch

    from benchmarks.beauty_popularity import prior_rerank

    c = {"items": torch.tensor([[0, 1, 2, -1]]), "gen": torch.tensor([[-1.0, -1.2, -5.0, -9.0]]),
         "dense": torch.zeros(1, 4), "seen": torch.tensor([[False, False, False, False]])}
    counts = np.array([1000, 100, 0, 0])  # item 2 was never a training target
    out = prior_rerank(c, counts, np.array([2]), [0.0, 0.1, 1.0])
    assert out["0.0"]["recall@10"] == 1.0 and out["0.0"]["ndcg@10"] == pytest.approx(0.5)  # third of three
    assert out["1.0"]["ndcg@10"] == pytest.approx(1.0)  # -5 - 0 beats -1 - log(1001) and -1.2 - log(101)
    assert out["0.1"]["ndcg@10"] == pytest.approx(0.5)  # a small correction does not reorder these gaps
    assert out["1.0"]["plain"]["ndcg@10"] == pytest.approx(1.0)  # nothing seen: both protocols agree


def test_levers_cache_is_restored_only_for_runs_whose_lever_is_unchanged(tmp_path, monkeypatch):
    """A fresh checkout refills the lever cache from the committed table; a lever redefined since retrains."""
    import argparse

    from benchmarks import beauty_levers as bl

    monkeypatch.setenv("OXY_HOME", str(tmp_path))
    args = argparse.Namespace(budget_min=10.0, version="V4", eval_rows=8000, beam=50)
    same = {**bl.lever_spec("grouped_collab60", 1, args), "recall@10": 0.11}
    changed = {**bl.lever_spec("grouped_collab60_lr4e3", 0, args), "recall@10": 0.1}
    changed["train"] = {**changed["train"], "lr": 8e-3}  # recorded under an older definition of the lever
    table = {"levers": {"grouped_collab60": {"runs": [same]}, "grouped_collab60_lr4e3": {"runs": [changed]},
                        "a_lever_since_removed": {"runs": [{**same, "lever": "a_lever_since_removed"}]}}}
    assert bl.restore_cache(table, args) == ["grouped_collab60-s1"]
    cached = bl.cached_path(bl.lever_spec("grouped_collab60", 1, args))
    assert json.loads(cached.read_text())["recall@10"] == 0.11
    assert not bl.cached_path(bl.lever_spec("grouped_collab60_lr4e3", 0, args)).exists()
    assert bl.restore_cache(table, args) == []  # already there: nothing overwritten


def test_a_derived_sid_version_spells_its_codebook_overrides():
    from benchmarks.beauty_data import codebook_overrides

    assert codebook_overrides("V4") == ("V4", {})
    assert codebook_overrides("V4-collaborative0.6-seed1") == ("V4", {"collaborative": 0.6, "seed": 1})
    assert codebook_overrides("V1-collaborative_dim32-width128") == ("V1", {"collaborative_dim": 32, "width": 128})
    assert codebook_overrides("V4-collaborative0.6-collaborative_shrink10") == (
        "V4", {"collaborative": 0.6, "collaborative_shrink": 10.0})
    with pytest.raises(ValueError, match="'dropout0.2' is not <key><number>"):
        codebook_overrides("V4-dropout0.2")


def test_a_derived_sid_version_is_built_under_the_name_it_was_asked_by():
    """A fresh machine builds ``V4-collaborative0.6-collaborative_shrink10`` in that folder (it once went to
    ``...shrink10.0`` and training then found no codes)."""
    from benchmarks.beauty_data import codebook_overrides, derived_name

    for name in ("V4-collaborative0.6-collaborative_shrink10", "V4-collaborative0.6-seed1", "V1-collaborative1.5",
                 "V1-collaborative_dim32-width128"):
        assert derived_name(*codebook_overrides(name)) == name


def test_members_on_other_codebooks_decode_as_a_codebook_ensemble(tiny):
    import argparse

    from benchmarks.beauty import ensemble_of, member_versions
    from oxy_dagster.model.ensemble import CodebookEnsemble, GeneratorEnsemble
    from oxy_dagster.model.trie import CodeTrie

    codes = tiny.catalogue()
    other = codes[::-1].copy()
    a, b = tiny.model(codes), tiny.model(other)
    trie, trie_b = CodeTrie.build(codes, list(tiny.vocab)), CodeTrie.build(other, list(tiny.vocab))
    same = ensemble_of([(a, trie), (tiny.model(codes.copy()), trie)])
    assert isinstance(same, GeneratorEnsemble)
    mixed = ensemble_of([(a, trie), (b, trie_b)])
    assert isinstance(mixed, CodebookEnsemble)
    args = argparse.Namespace(members=2, member_versions="V4-collaborative0.6,V4-collaborative0.6-seed1")
    assert member_versions("V4-collaborative0.6", args) == ["V4-collaborative0.6", "V4-collaborative0.6-seed1"]
    assert member_versions("V4", argparse.Namespace(members=3, member_versions=None)) == ["V4"] * 3
    with pytest.raises(SystemExit, match="needs --members"):
        member_versions("V4-collaborative0.6", argparse.Namespace(members=3, member_versions=args.member_versions))


def test_the_peer_is_read_at_its_best_validation_epoch_with_that_epochs_validation_figures():
    """OxyRec's selected model is scored on every validation user; the peer's figures beside it are those of the
    epoch its validation selects, whether the peer is selected here or carried already selected."""
    from benchmarks.beauty import select_peer

    point = lambda e, v, t: {"epoch": e, "minute": 3.0 * e,  # noqa: E731
                             "valid": {"recall@10": v, "ndcg@10": v / 2, "plain": {"recall@10": v}},
                             "test": {"recall@10": t, "ndcg@10": t / 2, "plain": {"recall@10": t}}}
    peer = {"curve": [point(1, 0.05, 0.04), point(2, 0.09, 0.07), point(3, 0.08, 0.075)], "recall@10": 0.075,
            "ndcg@10": 0.0375, "plain": {"recall@10": 0.075}, "model": "SASRec"}
    got = select_peer(peer)
    assert got["selected_epoch"] == 2 and got["recall@10"] == 0.07  # test read at the best validation epoch
    assert got["valid"]["recall@10"] == 0.09 and got["final"]["recall@10"] == 0.075
    carried = select_peer({k: v for k, v in got.items() if k != "valid"})
    assert carried["valid"] == got["valid"] and carried["recall@10"] == 0.07


def test_the_transfer_benchmark_drops_the_most_recent_item_and_samples_each_target_kind():
    import numpy as np
    import pandas as pd
    import torch

    from benchmarks.beauty_transfer import target_rows, without_last

    pad = 9
    short = torch.tensor([[pad, 1, 2, 3], [pad, pad, pad, 4]])  # right-aligned: 3 and 4 are the most recent
    beh = torch.tensor([[0, 1, 2, 3], [0, 0, 0, 1]])
    s, b = without_last(short, beh, pad)
    assert s.tolist() == [[pad, pad, 1, 2], [pad, pad, pad, pad]] and b.tolist() == [[0, 0, 1, 2], [0, 0, 0, 0]]
    assert short[0, 3] == 3  # the input is left as it was
    meta = pd.DataFrame({"user_id": ["a", "a", "a", "a", "b", "b", "b"],
                         "split": ["train", "train", "valid", "test", "train", "valid", "test"]})
    target = np.array([1, 2, 3, 4, 5, pad, 6])  # b's validation target is not in the catalogue
    rows = target_rows(meta, target, pad, n=0)
    assert rows["train_last"].tolist() == [1, 4] and rows["valid"].tolist() == [2] and rows["test"].tolist() == [3, 6]
    assert len(target_rows(meta, target, pad, n=1)["test"]) == 1


def test_members_must_number_the_catalogue_alike():
    import types

    import numpy as np

    from benchmarks.beauty_data import check_catalogue_order

    cat = types.SimpleNamespace(item_ids=np.array(["a", "b", "c"]))
    check_catalogue_order(cat, types.SimpleNamespace(item_ids=np.array(["a", "b", "c"])), "V4-seed1", "V4")
    for other in (["a", "c", "b"], ["a", "b"]):
        with pytest.raises(ValueError, match="V4-seed1 orders the catalogue differently from V4"):
            check_catalogue_order(cat, types.SimpleNamespace(item_ids=np.array(other)), "V4-seed1", "V4")


def test_the_hour_run_carries_each_levers_table_under_its_file_name():
    """Levers measured on two machines sit side by side in the results, each with its own provenance, and a
    lever's run details (seeds' runs, steps) stay in its table."""
    from benchmarks.beauty import carried_levers

    table = {"commit": "abc1234", "split": "valid", "budget_s": 600.0, "machine": "2 cores (Xeon)",
             "levers": {"w128": {"recall@10": 0.108, "ndcg@10": 0.062, "plain": {"recall@10": 0.098}, "kept": "no",
                                 "std": {"recall@10": 0.002}, "runs": [{"seed": 0}], "steps": 2752}}}
    got = carried_levers(table)
    assert {k: got[k] for k in ("commit", "split", "budget_s", "machine")} == {
        "commit": "abc1234", "split": "valid", "budget_s": 600.0, "machine": "2 cores (Xeon)"}
    assert got["w128"] == {"recall@10": 0.108, "ndcg@10": 0.062, "plain": {"recall@10": 0.098}, "kept": "no",
                           "std": {"recall@10": 0.002}}


def test_paired_hits_split_the_users_by_which_model_hits():
    """OxyRec's sampled users against SASRec's per-user hits: each user in exactly one group, looked up by id."""
    import numpy as np

    from benchmarks.beauty_popularity import paired

    users = np.array(["u1", "u2", "u3", "u4", "u5"], dtype=object)
    oxy = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    peer = {"u1": 1.0, "u2": 0.0, "u3": 1.0, "u4": 0.0, "u5": 1.0, "u9": 1.0}  # u9: a user OxyRec did not sample
    freq = np.array([40, 3, 12, 0, 20])
    got = paired(oxy, users, peer, freq)
    assert {k: v["users"] for k, v in got.items()} == {"both": 1, "oxyrec_only": 1, "sasrec_only": 2, "neither": 1}
    assert got["sasrec_only"]["share"] == pytest.approx(0.4)
    assert got["sasrec_only"]["target_training_count_median"] == 16.0  # u3 and u5: 12 and 20


def test_per_level_path_log_probabilities_sum_to_the_path_score(tiny):
    """``path_logp(per_level=True)`` splits the generation score by code level; empty slots are zeros."""
    import dataclasses

    import torch

    from oxy_dagster.model.decoding import path_logp

    codes = tiny.catalogue()
    model = tiny.model(codes).eval()
    model.cfg = dataclasses.replace(model.cfg, dense_mix=0.0)  # the generation score alone
    batch = tiny.batch(len(codes), b=3)
    items = torch.tensor([[0, 1, -1], [2, 3, 4], [5, -1, -1]])
    each = path_logp(model, batch, items, per_level=True)
    total = path_logp(model, batch, items)
    assert each.shape == (3, 3, len(tiny.vocab))
    assert torch.allclose(each.sum(-1)[items >= 0], total[items >= 0], atol=1e-5)
    assert (each[items < 0] == 0).all() and torch.isinf(total[items < 0]).all()


def test_the_transition_baseline_ranks_the_last_items_successors_then_popular_items_without_history():
    from benchmarks.beauty_transitions import ranked_lists, transitions

    # training samples (last item -> target): 0 -> 1 twice, 0 -> 2 once, 3 -> 4 once
    succ = transitions(np.array([0, 0, 0, 3]), np.array([1, 2, 1, 4]))
    assert succ[0][0].tolist() == [1, 2] and succ[0][1].tolist() == [2, 1]
    assert succ[3][0].tolist() == [4] and 1 not in succ
    popular = np.array([4, 1, 5, 2, 0, 3])
    history = np.array([[0, 9], [3, 4], [7, 9]])  # row 1 has already seen item 4 (its last item's successor)
    pred = ranked_lists(np.array([0, 3, 7]), history, succ, popular, k=4)
    assert pred[0].tolist() == [1, 2, 4, 5]  # successors by count, then popularity, never the history
    assert pred[1].tolist() == [1, 5, 2, 0]  # its successor 4 and its last item 3 are history
    short = ranked_lists(np.array([3]), np.array([[3, 4]]), succ, np.array([4, 1, 3]), k=4)
    assert short.tolist() == [[1, -1, -1, -1]]  # the list runs short rather than repeat or show history
    pop = ranked_lists(np.array([0, 3, 7]), history, succ, popular, k=4, use_transitions=False)
    assert pop[0].tolist() == [4, 1, 5, 2]


def test_rare_candidates_ranking_keeps_the_first_n_dense_items_and_leans_on_the_dense_head():
    """beauty_rare's setting (N, mix, beta): the beam's items plus the dense head's first N, ranked by
    gen + mix x dense - beta x log(1 + count); the history filter drops seen items, ``in_candidates`` counts reach."""
    import numpy as np
    import torch

    from benchmarks.beauty_rare import ranking, read

    # items 0, 1 from the beam; 2, 3 the dense head's first and second; item 1 is in the user's history
    c = {"items": torch.tensor([[0, 1, 2, 3]]), "gen": torch.tensor([[-1.0, -0.5, -6.0, -7.0]]),
         "dense": torch.tensor([[-4.0, -3.0, -1.0, -1.5]]), "dense_rank": torch.tensor([[-1, -1, 0, 1]]),
         "seen": torch.tensor([[False, True, False, False]])}
    log_count = torch.log1p(torch.tensor([50.0, 50.0, 0.0, 0.0]))
    pred, reach = ranking(c, log_count, (0, 1.0, 0.0), True)
    assert pred[0, 0] == 0 and set(pred[0, :3].tolist()) == {0, -1}  # the beam alone, history dropped
    assert reach.tolist() == [[0, -1, -1, -1]]
    pred, reach = ranking(c, log_count, (1, 1.0, 0.0), True)  # item 2 joins: -7 < -5, so it ranks second
    assert pred[0, :2].tolist() == [0, 2] and reach.tolist() == [[0, -1, 2, -1]]
    pred, _ = ranking(c, log_count, (2, 4.0, 0.0), True)  # the dense head leads: 2 (-10), 3 (-13), 0 (-17)
    assert pred[0, :3].tolist() == [2, 3, 0]
    pred, _ = ranking(c, log_count, (2, "only", 0.0), False)  # dense alone, history kept: 2, 3, 1, 0
    assert pred[0, :4].tolist() == [2, 3, 1, 0]
    pred, _ = ranking(c, log_count, (0, 1.0, 1.0), False)  # equal counts: the correction keeps the beam's order
    assert pred[0, :2].tolist() == [1, 0]
    counts = np.array([50, 50, 0, 0])
    got = read(c, log_count, counts, np.array([3]), (2, 4.0, 0.0))
    assert got["recall@10"] == 1.0 and got["ndcg@10"] == pytest.approx(1 / np.log2(3))
    assert got["in_candidates"] == 1.0 and got["buckets"]["0-2"]["recall@10"] == 1.0
    assert read(c, log_count, counts, np.array([3]), (1, 4.0, 0.0))["in_candidates"] == 0.0


def test_combining_the_members_candidates_keeps_the_joint_beams_ranking_and_adds_their_own(tiny):
    """beauty_combine: the committed setting ranks the joint beam's items as the ensemble's beam search does; the
    union adds each member's own beam; with identical members the product and the mixture of experts agree."""
    import torch

    from benchmarks.beauty_combine import COMMITTED, ranked, read_users, score
    from oxy_dagster.model.decoding import beam_search, encode_users, first_state
    from oxy_dagster.model.ensemble import GeneratorEnsemble
    from oxy_dagster.model.trie import CodeTrie

    codes = tiny.catalogue()
    data = tiny.data(codes, n=16)
    trie = CodeTrie.build(codes, list(tiny.vocab))
    rows = np.arange(len(data))
    hist = torch.cat([data.tensors["short_items"], data.tensors["long_items"]], 1)[rows]
    members = [tiny.model(codes, dense_weight=1.0, dense_mix=1.0).eval() for _ in range(2)]  # seeded alike
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in members[1].parameters():  # a second member that disagrees with the first
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    c = read_users(members, data, trie, rows, beam=3, batch_size=8)
    want = beam_search(GeneratorEnsemble(members), data.batch(rows), trie, beam=3, topk=10, exclude=hist)[0]
    got = ranked(c, COMMITTED, True, k=10)
    assert np.array_equal(got[:, :want.shape[1]], want.numpy()) and (got[:, want.shape[1]:] == -1).all()
    own = beam_search(members[1], data.batch(rows), trie, beam=3, topk=3, dense_mix=0.0, dense_candidates=0)[0]
    for r in range(len(rows)):
        got = set(c["items"][r].tolist()) - {-1}
        assert set(own[r].tolist()) - {-1} <= got and len(got) == int((c["items"][r] >= 0).sum())  # distinct
        assert (c["items"][r][c["joint"][r]] >= 0).all()
    assert not torch.isfinite(score(c, COMMITTED)[~c["joint"]]).any()  # the committed ranking: the joint beam only
    assert not torch.allclose(score(c, ("mixture", 1.0)), score(c, ("product", 1.0)))  # different members differ
    assert (~c["joint"] & (c["items"] >= 0)).any()  # the members' own beams added items the joint beam lacks
    twins = read_users([members[0], members[0]], data, trie, rows, beam=3, batch_size=8)
    assert torch.allclose(score(twins, ("mixture", 2.0)), score(twins, ("product", 2.0)), atol=1e-5)
    wide = read_users(members, data, trie, rows, beam=3, batch_size=8, dense_candidates=4)
    batch = data.batch(rows)
    with torch.no_grad():  # the members' mean dense head's 4 best items outside the history join the union
        ens = GeneratorEnsemble(members)
        dense = ens.dense_logp(first_state(ens, encode_users(ens, batch)))
    for r in range(len(rows)):
        d = dense[r].clone()
        d[[h for h in hist[r].tolist() if 0 <= h < len(d)]] = float("-inf")
        assert set(d.topk(4).indices.tolist()) <= set(wide["items"][r].tolist())
        assert set(c["items"][r].tolist()) - {-1} <= set(wide["items"][r].tolist())  # nothing lost
    a, b = ranked(wide, COMMITTED, True, k=10), ranked(c, COMMITTED, True, k=10)  # the joint beam's ranking
    assert np.array_equal(a[:, :b.shape[1]], b) and (a[:, b.shape[1]:] == -1).all()


def test_a_long_run_checks_the_peer_package_first_and_resumes_from_the_figures_it_scored(tmp_path, monkeypatch):
    """The peer's package is checked before any training; scored figures kept beside the models are reused by a
    --resume of the same settings and refused, naming the file and the setting, for other settings."""
    import argparse

    import benchmarks.beauty_scored as bs
    from benchmarks.beauty import parser, recipe

    args = parser().parse_args(["--budget-min", "60", "--members", "3"])
    monkeypatch.setattr(bs.importlib.util, "find_spec", lambda name: None)  # RecBole absent
    with pytest.raises(SystemExit, match="needs RecBole.*OXY_EXTRAS=bench"):
        bs.require_peer_package(args)
    bs.require_peer_package(argparse.Namespace(no_peer=False, peer_from="beauty.json"))  # no peer trained here
    bs.require_peer_package(argparse.Namespace(no_peer=True, peer_from=None))

    key = bs.run_key(args, recipe(args))
    assert bs.load_scored(tmp_path, key) is None  # nothing kept yet: the run trains
    figures = {"recall@10": 0.096, "members": [{"seed": 0, "steps_done": 4742}]}
    bs.save_scored(tmp_path, key, figures)
    assert bs.load_scored(tmp_path, bs.run_key(parser().parse_args(["--budget-min", "60", "--members", "3"]),
                                               recipe(args))) == figures
    other = parser().parse_args(["--budget-min", "60", "--members", "3", "--dense-interleave", "0.5"])
    with pytest.raises(SystemExit, match=rf"{bs.SCORED}.*other settings \(recipe\)"):
        bs.load_scored(tmp_path, bs.run_key(other, recipe(other)))
