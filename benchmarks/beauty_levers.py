"""Benchmark: which training / decoding levers move the generator on Amazon Beauty (issue #15's levers table).

Every lever trains the generator afresh for the same short wall-clock budget
(``TrainConfig.budget_s``) from the same data and SID codebook, then ranks the
catalogue for the first ``--eval-rows`` users of the **validation** split (never
test: the settings chosen here are then run once on test by ``benchmarks/beauty.py``).
One beam search per lever gives the candidates (beam + the history length, so the
history filter can drop items without emptying the list); they are scored with
and without the history filter and, for a model with a dense head, re-ranked
with each ``dense_mix`` in ``MIXES`` (generation log-probability plus mix x the
dense head's item log-probability; mix "only" ranks the beam's candidates by the
dense head alone). A lever's figure is its best mix; every mix is in the JSON.
The recipe lever (``RECIPE``: the committed defaults before the dense head, the levers'
reference) trains with every one of ``--seeds``, the others with seed 0; a row reads every seed at the first
seed's best mix (mean, std). Finished levers are kept under ``$OXY_HOME/bench/levers`` so an interrupted sweep
resumes where it stopped.
Writes benchmarks/results/beauty_levers.json; ``benchmarks/beauty.py`` carries its table.

Usage: ``python -m benchmarks.beauty_levers [--budget-min 10] [--levers baseline,grouped_batches] [--seeds 0,1,2]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.beauty_data import beauty_paths, derived_codebook, prepare_data
from benchmarks.beauty_eval import KEYS, candidates, scored, split_rows
from benchmarks.common import write_result
from oxy_dagster.io import write_json
from oxy_dagster.model.checkpoint import latest_checkpoint, load_checkpoint
from oxy_dagster.model.config import TrainConfig
from oxy_dagster.model.ensemble import GeneratorEnsemble
from oxy_dagster.model.pipeline import pretrain
from oxy_dagster.paths import DataPaths
from oxy_dagster.paths import work_dir as oxy_home

# name -> (generator overrides, training overrides); "baseline" is the committed default recipe
# The recipe before issue #15 (pinned, so a lever means the same after the defaults change) and each lever on it.
BASE_MODEL = {"dense_weight": 0.0, "dense_mix": 0.0, "item_id_emb": False, "dense_free_items": False}
BASE_TRAIN = {"lr": 2e-3, "batch_size": 256, "group_by_length": 0}
GROUPED = {"group_by_length": 32}
LEVERS: dict[str, tuple[dict, dict]] = {
    "baseline": ({}, {}),
    "grouped_batches": ({}, GROUPED),
    "grouped_dense": ({"dense_weight": 1.0}, GROUPED),
    "grouped_dropout0": ({"dropout": 0.0}, GROUPED),
    "grouped_dropout30": ({"dropout": 0.3}, GROUPED),  # for longer budgets: SASRec's recipe uses 0.5
    # SASRec-like regularisation for budgets past the overfitting point (the one-hour curve peaks at 20-30 min)
    "grouped_regularised": ({"dropout": 0.3, "emb_dropout": 0.2, "label_smoothing": 0.1}, GROUPED),
    "grouped_collab30": ({}, GROUPED),
    "grouped_collab60": ({}, GROUPED),
    # two generators of half the budget each, decoded as one (GeneratorEnsemble): the hour run's --members
    "grouped_collab60_members2": ({}, GROUPED),
    # learning rate, width, depth and weight decay on the collaborative codebook (#15's untried recipe levers)
    "grouped_collab60_lr1e3": ({}, {**GROUPED, "lr": 1e-3}),
    "grouped_collab60_lr4e3": ({}, {**GROUPED, "lr": 4e-3}),
    "grouped_collab60_wide": ({"d_model": 192, "d_ff": 768}, GROUPED),
    "grouped_collab60_deep": ({"n_enc_layers": 3, "n_dec_layers": 3}, GROUPED),
    "grouped_collab60_wd": ({}, {**GROUPED, "weight_decay": 0.1}),
    # a learned per-item input vector beside the semantic ID's codes (SASRec's input is an ID embedding alone)
    "grouped_collab60_itemid": ({"item_id_emb": True}, GROUPED),
    # half the regularised recipe (no input dropout): for the hour's 15-minute members, which overfit less than
    # one hour-long generator but transfer from validation to test worse than SASRec
    "grouped_collab60_mild": ({"dropout": 0.2, "label_smoothing": 0.1}, GROUPED),
    # output heads tied to the input code embeddings (GeneratorConfig.tie_heads): fewer free parameters, and a
    # code's input and output vectors learn from each other's gradients
    "grouped_collab60_tied": ({"tie_heads": True}, GROUPED),
    # a narrower codebook (128 codes a level instead of 256 for 12k items): each code is shared by more items, so
    # its embedding and logit see more training targets
    "grouped_collab60_width128": ({}, GROUPED),
    "grouped_collab60_width64": ({}, GROUPED),
    # a deeper, narrower codebook: four RQ-KMeans levels of 64 codes (then the collision code)
    "grouped_collab60_width64_levels4": ({}, GROUPED),
    # the loss leans to each user's late interactions (TrainConfig.recency_weight): a sample's weight grows
    # linearly with its place in the user's training sequence, the latest 4x the first; the held-out targets
    # are the items that follow a user's latest, and each step past the training data loses recall
    # (beauty_transfer.json)
    "grouped_collab60_recency3": ({}, {**GROUPED, "recency_weight": 3.0}),
    # the batch size (#15's recipe levers: the only one not yet measured): half the batch makes more, cheaper
    # updates in the same seconds; twice the batch fewer, smoother ones (same learning rate and schedule)
    "grouped_collab60_batch128": ({}, {**GROUPED, "batch_size": 128}),
    "grouped_collab60_batch512": ({}, {**GROUPED, "batch_size": 512}),
    # no dropout at all (the recipe's 0.1 off): cheaper steps, no noise, for a budget too short to overfit
    "grouped_collab60_dropout0": ({"dropout": 0.0}, GROUPED),
    # the other direction, for the hour's 20-minute members: dropout 0 overfits there (training loss 1.62 against
    # 2.33 after 15 epochs, beauty_levers_xeon_20min), so twice the recipe's dropout, without the label smoothing
    # that sank the mild recipe
    "grouped_collab60_dropout20": ({"dropout": 0.2}, GROUPED),
    # TIGER's hashed user-ID token (GeneratorConfig.user_buckets, TIGER's 2,000 buckets for Beauty's 22,363 users):
    # a per-user vector on the profile token, which Beauty's users otherwise leave empty (no age, city or tier)
    "grouped_collab60_user2000": ({"user_buckets": 2000}, GROUPED),
    # an exponential moving average of the weights (TrainConfig.ema_decay; horizon ~1,000 steps, an eighth of a
    # 20-minute member's): the run is also scored with its raw weights (``raw_weights``), a paired comparison
    "grouped_collab60_ema999": ({}, {**GROUPED, "ema_decay": 0.999}),
    # LIGER's hybrid at a quarter of the weight that sank grouped_dense: the dense head's full-catalogue softmax
    # (SASRec's objective) beside next-token prediction, the beam's candidates re-ranked by each mix in MIXES
    "grouped_collab60_dense025": ({"dense_weight": 0.25}, GROUPED),
    # twice that weight: 0.25 gained at 20 minutes where 1.0 lost at 10, so the optimum may lie between
    "grouped_collab60_dense050": ({"dense_weight": 0.5}, GROUPED),
    # the dense head also learns each sample's next three later training targets of the user (PinnerFormer's dense
    # all-action loss, GeneratorConfig.dense_ahead): the held-out targets lie one and two steps past the training
    # data, and each step loses recall (beauty_transfer.json); a longer horizon in training may carry further
    "grouped_collab60_dense025_ahead3": ({"dense_weight": 0.25, "dense_ahead": 3}, GROUPED),
    # the long tail (beauty_popularity_hour: OxyRec reaches 29-48 % of SASRec's recall on targets seen <= 10 times in
    # training, which test holds more of than validation): each item's collaborative vector shrunk by n / (n + 10)
    # for its n training users before RQ-KMeans (CodebookConfig.collaborative_shrink), so a rare item's code follows
    # its content, which generalises from few purchases, rather than a spectral vector drawn from a handful of rows
    "grouped_collab60_dense025_shrink10": ({"dense_weight": 0.25}, GROUPED),
    # transitions to rare items (beauty_transitions: a last-item Markov chain reaches 2.2x the hour ensemble's test
    # recall on targets seen <= 2 times): a free per-item vector (item_id_emb) beside the codes, which the dense head's
    # item vectors hold too, so its softmax has SASRec's tied per-item input and output (untried with the dense head)
    "grouped_collab60_dense025_shrink10_itemid": ({"dense_weight": 0.25, "item_id_emb": True}, GROUPED),
    # the history filter lifts SASRec's test NDCG@10 by 36 % and OxyRec's by 12 % (beauty-hour-shrink-itemid: filtered
    # NDCG@10 0.90 of SASRec's, plain 1.05): Beauty never repeats a purchase, and the dense head spends its softmax on
    # pushing the user's own (tied, self-similar) items down; left out of its negatives (dense_exclude_history), it
    # only learns to rank the rest, which is all the filtered lists compare
    "grouped_collab60_dense025_shrink10_itemid_exclhist": (
        {"dense_weight": 0.25, "item_id_emb": True, "dense_exclude_history": True}, GROUPED),
    # with per-item vectors the dense head alone outranks generation alone (0.1259 against 0.1175 at 20 minutes, and
    # seeds 1-2 choose mix 2.0 or the head alone): twice its weight in training, as grouped_collab60_dense050 tried
    # without the per-item vectors (level there)
    "grouped_collab60_dense050_shrink10_itemid": ({"dense_weight": 0.5, "item_id_emb": True}, GROUPED),
    # the per-item vectors are 1.55 M free parameters, half the model, and the hour's validation lead shrinks on test;
    # SASRec drops half of its embedding sum (hidden_dropout_prob 0.5): dropout 0.2 on the encoder's input tokens
    # (emb_dropout, measured before only inside the label-smoothed "regularised" recipes)
    "grouped_collab60_dense025_shrink10_itemid_embdrop20": (
        {"dense_weight": 0.25, "item_id_emb": True, "emb_dropout": 0.2}, GROUPED),
    # the rarest targets' gap is the dense head's ranking too (beauty_levers_xeon_20min_rare): their item vectors sum
    # the code embeddings they share with popular items; here the head scores items by the free per-item vector alone
    # (dense_free_items, SASRec's output embedding), the inputs keeping the whole embedding
    "grouped_collab60_dense025_shrink10_itemid_freeout": (
        {"dense_weight": 0.25, "item_id_emb": True, "dense_free_items": True}, GROUPED),
    # test holds more targets that are rare in training than validation does (beauty_popularity_hour: 10.1 % against
    # 7.2 % seen at most twice, 40.6 % against 37.9 % seen 3-10 times), and on the 3-10 bucket the hour ensemble's
    # test recall is half SASRec's: a stronger shrink, n / (n + 30), so items with up to a few dozen training users
    # take their codes mostly from their content
    "grouped_collab60_dense025_shrink30_itemid": ({"dense_weight": 0.25, "item_id_emb": True}, GROUPED),
    # the other side of the dense weight: at 0.5 the per-item recipe trained a worse dense head in the budget
    # (beauty_levers_xeon_20min_dense050itemid), so the loss's balance may favour less than 0.25
    "grouped_collab60_dense0125_shrink10_itemid": ({"dense_weight": 0.125, "item_id_emb": True}, GROUPED),
    # with free output vectors the hour ensemble's dense head alone nearly ranks as well as the whole model
    # (beauty_combine_freeout: 0.1235 against 0.1282) and ranks the targets seen at most 10 times better: weight 0.5,
    # which lost with the whole-embedding head (beauty_levers_xeon_20min_dense050itemid), on the free output vectors
    "grouped_collab60_dense050_shrink10_itemid_freeout": (
        {"dense_weight": 0.5, "item_id_emb": True, "dense_free_items": True}, GROUPED),
    # the rarest targets' gap is memory of single transitions (beauty_transitions: a last-item Markov chain reaches
    # 2.2x the generator's recall there), and the dense head reads the decoder's first state, which sees the last item
    # only through attention: the last item as the instruction's trigger (last_item_trigger, FPMC's transition term)
    "grouped_collab60_dense025_shrink10_itemid_freeout_lasttrig": (
        {"dense_weight": 0.25, "item_id_emb": True, "dense_free_items": True, "last_item_trigger": True}, GROUPED),
}
# lever -> sid_codebooks overrides: the lever trains on its own codebook, built from the version's item vectors
CODEBOOKS: dict[str, dict] = {
    "grouped_collab30": {"collaborative": 0.3},
    "grouped_collab60": {"collaborative": 0.6},
    "grouped_collab60_members2": {"collaborative": 0.6},
    **{f"grouped_collab60_{k}": {"collaborative": 0.6}
       for k in ("lr1e3", "lr4e3", "wide", "deep", "wd", "itemid", "mild", "tied", "recency3", "batch128", "batch512",
                 "dropout0", "dropout20", "user2000", "ema999", "dense025", "dense050",
                 "dense025_ahead3")},
    "grouped_collab60_width128": {"collaborative": 0.6, "width": 128},
    "grouped_collab60_width64": {"collaborative": 0.6, "width": 64},
    "grouped_collab60_width64_levels4": {"collaborative": 0.6, "width": 64, "levels": 4},
    **{f"grouped_collab60_dense025_shrink10{k}": {"collaborative": 0.6, "collaborative_shrink": 10}
       for k in ("", "_itemid", "_itemid_exclhist", "_itemid_embdrop20", "_itemid_freeout",
                 "_itemid_freeout_lasttrig")},
    **{f"grouped_collab60_dense{w}_shrink10_itemid{k}": {"collaborative": 0.6, "collaborative_shrink": 10}
       for w, k in (("050", ""), ("0125", ""), ("050", "_freeout"))},
    "grouped_collab60_dense025_shrink30_itemid": {"collaborative": 0.6, "collaborative_shrink": 30},
}
# lever -> generators trained one after another for budget / n each (seeds seed x n + i) and decoded together
MEMBERS: dict[str, int] = {"grouped_collab60_members2": 2}
MIXES = (0.0, 0.25, 0.5, 1.0, 2.0, "only")
# the levers the committed defaults combined before the dense head (GeneratorConfig, TrainConfig): the reference every
# lever above is read against; the defaults now add grouped_collab60_dense025's head (dense_weight 0.25, mix 1.0) and
# grouped_collab60_dense025_shrink10_itemid's per-item vector (item_id_emb)
RECIPE = "grouped_batches"
DECISIONS = {  # lever -> kept / dropped and why, from the validation figures
    "baseline": "the recipe before #15",
    "grouped_batches": "kept (TrainConfig.group_by_length = 32): 1.9x the steps in the budget, the largest gain",
    "grouped_dense": "dropped (dense_weight stays 0): generation falls far below grouped_batches and re-ranking "
                     "by the dense head recovers only part of it",
    "grouped_regularised": "not at 10 minutes (0.0835 vs 0.1050: it learns slower); kept for the one-hour run "
                           "(beauty.py --dropout 0.3 --emb-dropout 0.2 --label-smoothing 0.1), where it is the largest "
                           "gain measured (test Recall@10 0.0751 vs 0.0660 at dropout 0.1); GeneratorConfig keeps 0.1",
    "grouped_collab30": "promising (+4 % Recall@10 over the recipe's 3-seed mean, one seed); not yet the default: "
                        "unmeasured at the hour and with more seeds",
    "grouped_collab60": "kept for the one-hour run (3 seeds: +5 % Recall@10, +6 % NDCG@10 over the recipe's 3-seed "
                        "mean; the hour's 3 x 20-minute members train on it: test Recall@10 0.0794); not the default "
                        "SID build",
    "grouped_collab60_members2": "not at 10 minutes (0.0990 vs one generator's 0.1098 on the same codebook, one seed): "
                                 "5-minute members are too weak; at the hour, three members of 20 minutes are "
                                 "the run's best (beauty.py --members 3)",
    "grouped_collab60_lr4e3": "no gain (lr 4e-3: 0.1095 / 0.0631, the same as lr 2e-3's seed 0, 0.1095 / 0.0629); "
                              "TrainConfig keeps 2e-3",
    "grouped_collab60_lr1e3": "dropped (lr 1e-3 learns slower: -6 % Recall@10, -10 % NDCG@10 against seed 0)",
    "grouped_collab60_wide": "dropped at 10 minutes (d_model 192: 58 % of the steps, -2 % Recall@10, -6 % NDCG@10); "
                             "unmeasured at the hour",
    "grouped_collab60_deep": "dropped at 10 minutes (3 + 3 layers: 66 % of the steps, -5 % Recall@10, -8 % NDCG@10)",
    "grouped_collab60_wd": "no effect at 10 minutes (weight decay 0.1: 0.1091 / 0.0627, within the seed std); "
                           "unmeasured at the hour, where overfitting is the problem",
    "grouped_collab60_itemid": "no gain at 10 minutes (a per-item input vector: 0.1089 / 0.0636 against seed 0's "
                               "0.1095 / 0.0629, within the seed std, at 88 % of the steps); item_id_emb stays off; "
                               "unmeasured at the hour",
    "grouped_collab60_mild": "not for the hour's members (dropout 0.2 and label smoothing 0.1: 0.1004 / 0.0563, -9 % / "
                             "-10 % against the collaborative recipe's 3-seed mean, six of its seed stds): it learns "
                             "slower, and a member has a third of the hour",
}

# Decisions of another machine's table (``--name``), where the shared ones would cite the wrong figures: the
# Xeon table re-measures the hour run's member recipe on the 2-core Intel Xeon of the hour run (hash dropout).
TABLE_DECISIONS: dict[str, dict[str, str]] = {"beauty_levers_xeon": {
    "grouped_collab60": "the hour run's member recipe (collaborative codebook, hash dropout) on this machine, 3 "
                        "seeds: the reference of this table's levers",
    "grouped_collab60_tied": "dropped (tied output heads: Recall@10 0.1024, -2 %, 1.3 seed stds below the recipe's "
                             "mean; NDCG@10 0.0590, level) though it made the most steps; tie_heads stays off",
    "grouped_collab60_width128": "not kept: +3.7 % Recall@10 / +4.4 % NDCG@10 at 10 minutes (3 seeds, 2.5 and 3 "
                                 "standard errors of the difference), level with width 256 at the hour "
                                 "(beauty-hour-w128: every-user validation 0.1064 / 0.0632 against 0.1072 / 0.0631, "
                                 "test 0.0774 / 0.0445 against 0.0783 / 0.0452); the default SID build keeps 256",
    "grouped_collab60_width64": "dropped (width 64: -2.7 % Recall@10, -3.0 % NDCG@10 against the recipe's mean; "
                                "8,533 distinct 3-code prefixes for 12,101 items, collisions up to 102)",
    "grouped_collab60_width64_levels4": "no gain (four levels of 64: Recall@10 0.1030 / NDCG@10 0.0588, within one "
                                        "seed std below the recipe's mean; 10,431 distinct 4-code prefixes)",
    "grouped_collab60_recency3": "no gain (recency_weight 3: Recall@10 0.10575 / NDCG@10 0.06145 at 2,839 steps "
                                 "against the recipe re-measured in the same session, 0.10725 / 0.06039 at 2,868 "
                                 "steps, "
                                 "beauty_levers_xeon_ref: -1.4 % / +1.8 %, each within one seed std); "
                                 "TrainConfig.recency_weight stays 0",
    "grouped_collab60_batch128": "dropped (batch 128: Recall@10 0.10300 / NDCG@10 0.05780, 4,773 steps but 17 % fewer "
                                 "samples a second; -4.0 % / -4.3 % against the same-session reference of "
                                 "beauty_levers_xeon_ref, below the 3-seed mean too); batch_size stays 256",
    "grouped_collab60_batch512": "dropped (batch 512: Recall@10 0.10175 / NDCG@10 0.05852, 1,492 steps at 4 % more "
                                 "samples a second; -5.1 % / -3.1 % against the same-session reference); batch_size "
                                 "stays 256",
    "grouped_collab60_dropout0": "dropped (dropout 0: +2.1 % / +3.8 % against the same-session reference at 10 "
                                 "minutes, Recall@10 0.10950 / NDCG@10 0.06271, one seed; at the hour's member "
                                 "length of 20 minutes it overfits: -27 % / -26 %, beauty_levers_xeon_20min); "
                                 "dropout stays 0.1",
}, "beauty_levers_xeon_20min": {
    "grouped_collab60": "the hour's member recipe at a member's own length (20 minutes, seed 0): this table's "
                        "reference",
    "grouped_collab60_dropout0": "dropped: overfits at 20 minutes (Recall@10 0.07913 / NDCG@10 0.04766, -27 % / -26 % "
                                 "against the reference; training loss 1.62 against 2.33 after 7,994 steps); its "
                                 "10-minute gain was a model stopped before it overfits; dropout stays 0.1",
    "grouped_collab60_dropout20": "no gain (dropout 0.2: Recall@10 0.10837, level, NDCG@10 0.06183, -4.3 %, at 4,811 "
                                  "steps, the machine running slower during it); dropout stays 0.1",
    "grouped_collab60_itemid": "not kept (item_id_emb at 20 minutes: Recall@10 0.11038 / NDCG@10 0.06686, +1.5 % / "
                               "+3.5 % against the reference, plain -0.8 % / +2.4 %, at 83 % of its steps, one seed; "
                               "at the hour, beauty-hour-itemid, level on every validation user: 0.10701 / 0.06408 "
                               "against beauty's 0.1072 / 0.0631); item_id_emb stays off",
    "grouped_collab60_user2000": "not kept (TIGER's hashed user-ID token, 2,000 buckets: seed 0 Recall@10 0.10950 / "
                                 "NDCG@10 0.06291 at 8,452 steps; against the recipe re-measured in the same session, "
                                 "2 seeds each, beauty_levers_xeon_20min_ref: +0.9 % / -2.0 %, plain -1.0 % / -2.3 %, "
                                 "within the recipe's seed std); user_buckets stays 0",
}, "beauty_levers_xeon_20min_ema": {
    "grouped_collab60_ema999": "no effect (a moving average of the weights, decay 0.999, one seed: Recall@10 0.10825 / "
                               "NDCG@10 0.06358 against the same run's raw weights 0.10837 / 0.06375, -0.1 % / -0.3 %, "
                               "plain +0.5 % / +0.2 %); the cosine schedule already anneals the learning rate to 5 % "
                               "over the budget, so the last steps barely move the weights; ema_decay stays 0",
}, "beauty_levers_xeon_20min_dense": {
    "grouped_collab60_dense025": "kept, now GeneratorConfig's default (the dense head at weight 0.25, 3 seeds at mix "
                                 "1.0, chosen on seed 0's validation users: Recall@10 0.11513 +- 0.00098 / NDCG@10 "
                                 "0.06752 +- 0.00102, +6.0 % / +4.5 % against the recipe's four 20-minute runs, "
                                 "0.10862 +- 0.00169 / 0.06464 +- 0.00186, 6.4 and 2.6 standard errors of the "
                                 "difference; plain +2.2 % / +0.1 %; at 72-78 % of the recipe's steps); at the hour "
                                 "(beauty-hour-dense, every validation user) +2.6 % / +1.4 % over beauty's members",
    "grouped_collab60_dense050": "not kept over 0.25 (the dense head at weight 0.5, one seed at its best mix 1.0: "
                                 "Recall@10 0.11700 / NDCG@10 0.06776, +1.6 % / +0.4 % against weight 0.25's 3-seed "
                                 "mean, within two of its seed stds; generation alone weaker, mix 0: 0.10950 / "
                                 "0.06298 against 0.11242 / 0.06586); dense_weight stays 0.25",
}, "beauty_levers_xeon_20min_dense050": {
    "grouped_collab60_dense050": "not kept over 0.25 (the dense head at weight 0.5, 2 seeds at mix 1.0: Recall@10 "
                                 "0.11569 +- 0.00185 / NDCG@10 0.06712 +- 0.00091 against weight 0.25's 3-seed "
                                 "0.11513 / 0.06752, +0.5 % / -0.6 %: level); dense_weight stays 0.25",
}, "beauty_levers_xeon_20min_ahead": {
    "grouped_collab60_dense025_ahead3": "not kept (the dense head also learning each sample's next three later "
                                        "training targets, dense_ahead 3, one seed: Recall@10 0.11438 / NDCG@10 "
                                        "0.06588 at its best mix 0.5, 0.11213 / 0.06471 at the default mix 1.0, "
                                        "against the dense head's 3-seed 0.11513 +- 0.00098 / 0.06752 +- 0.00102: "
                                        "-0.7 % / -2.4 % at its best mix, -2.6 % / -4.2 % at 1.0; generation alone "
                                        "0.10975 and the dense head alone 0.10312, both below weight 0.25's seed 0); "
                                        "a second seed was stopped at its start; dense_ahead stays 0",
}, "beauty_levers_xeon_20min_shrink": {
    "grouped_collab60_dense025_shrink10": "kept for the hour (each item's collaborative vector shrunk by n / (n + 10) "
                                          "for its n training users, 3 seeds: Recall@10 0.11921 +- 0.00190 / NDCG@10 "
                                          "0.07060 +- 0.00117 at seed 0's best mix 0.5, +3.2 % / +4.4 % against the "
                                          "dense head's 3 seeds at that mix, 0.11550 / 0.06765; at the default mix "
                                          "1.0 0.11875 +- 0.00057 / 0.07079 +- 0.00038, +3.1 % / +4.8 %, plain "
                                          "+4.7 % / +6.4 %; generation alone +3.9 %, the dense head alone +6.7 %); "
                                          "the codebook keeps 11,078 distinct 3-code prefixes against 10,585, longest "
                                          "collision 22 against 44; measured at the hour in beauty-hour-shrink",
}, "beauty_levers_xeon_20min_itemid": {
    "grouped_collab60_dense025_shrink10_itemid": (
        "kept for the hour (item_id_emb with the dense head: its softmax holds a tied free vector per item, as "
        "SASRec's does; one seed at its best mix 1.0: Recall@10 0.12925 / NDCG@10 0.07661, +8.8 % / +8.2 % against "
        "the shrink lever's 3 seeds at mix 1.0, 0.11875 / 0.07079, plain +9.2 % / +8.0 %, with 13 % fewer steps; "
        "generation alone level, the dense head alone +10.7 %); seed 1: 0.12625 / 0.07497 at 5,396 steps; 2 seeds "
        "at mix 1.0: 0.12775 +- 0.00212 / 0.07579 +- 0.00116, +7.6 % / +7.1 %; seed 2: 0.12500 / 0.07391 at 5,291 "
        "steps; 3 seeds at mix 1.0: 0.12683 +- 0.00218 / 0.07516 +- 0.00136, +6.8 % / +6.2 %, plain 0.11633 / "
        "0.06553, +6.4 % / +5.4 %; at mix 2.0 0.12758 / 0.07547, level; measured at the hour in "
        "beauty-hour-shrink-itemid"),
}, "beauty_levers_xeon_20min_exclhist": {
    "grouped_collab60_dense025_shrink10_itemid_exclhist": (
        "not kept (dense_exclude_history on the per-item vector's recipe, seed 0 at mix 1.0: Recall@10 0.12450 / "
        "NDCG@10 0.07439, -1.8 % / -1.0 % against that recipe's 3 seeds, 0.12683 / 0.07516, and -3.7 % / -2.9 % "
        "against its own seed 0; plain -2.6 % / -5.4 %; at its best mix 2.0 0.12600 / 0.07517, -1.2 % / -0.4 % "
        "against the recipe's 3 seeds at mix 2.0, plain -1.6 % / -6.1 %; 5,010 steps, 5 % fewer: the mask costs "
        "steps and the head learns no better ranking of the rest for leaving the history out)"),
}, "beauty_levers_xeon_20min_dense050itemid": {
    "grouped_collab60_dense050_shrink10_itemid": (
        "not kept (the dense head at weight 0.5 with per-item vectors, seed 0 at its best mix 1.0: Recall@10 0.12512 / "
        "NDCG@10 0.07345, -1.3 % / -2.3 % against weight 0.25's 3 seeds, 0.12683 / 0.07516, -3.2 % / -4.1 % against "
        "its own seed 0; plain -1.8 % / -2.9 %; the dense head alone 0.12150 against 0.12587 at 0.25: a heavier "
        "dense loss trains a worse dense head in the budget, 4,918 steps)"),
}, "beauty_levers_xeon_20min_embdrop": {
    "grouped_collab60_dense025_shrink10_itemid_embdrop20": (
        "not kept (emb_dropout 0.2 on the per-item vector's recipe, seed 0 at mix 1.0: Recall@10 0.12012 / NDCG@10 "
        "0.06924, -5.3 % / -7.9 % against the recipe's 3 seeds, 0.12683 / 0.07516; at its best mix 2.0 0.12125 / "
        "0.07015, -5.0 % / -7.0 % against theirs there; plain -4.9 % / -9.0 %; 4,085 steps, 871 samples/s against "
        "1,100: whether the dropout or a slower machine cost the steps was not separated)"),
}, "beauty_levers_xeon_20min_freeout": {
    "grouped_collab60_dense025_shrink10_itemid_freeout": (
        "kept, now GeneratorConfig's default (dense_free_items: the dense head scores items by their per-item vectors"
        " alone; 3 seeds at seed 0's best mix 1.0: Recall@10 0.12675 +- 0.00173 / NDCG@10 0.07497 +- 0.00044, plain "
        "0.11687 / 0.06658, at 5,395-5,786 steps, 1,151-1,234 samples/s; against the per-item recipe's 3 seeds on the"
        " same AMD machine (beauty_levers_xeon_20min_rare, 0.12479 +- 0.00056 / 0.07423 +- 0.00014, plain 0.11471 / "
        "0.06448) +1.6 % / +1.0 %, plain +1.9 % / +3.3 %; against its committed 3 seeds on the Intel Xeon (0.12683 / "
        "0.07516, plain 0.11633 / 0.06553) -0.1 % / -0.3 %, plain +0.5 % / +1.6 %; seeds 1 and 2 choose mix 2.0 and "
        "1.0; a gain inside the spread between machines, so the hour decided: at the hour, both models in one run on "
        "the AMD machine (beauty), +2.7 % / +5.1 % on validation and +1.8 % / +5.5 % on test over the whole-embedding"
        " head's hour on that machine (beauty-hour-v3))"),
}, "beauty_levers_xeon_20min_shrink30": {
    "grouped_collab60_dense025_shrink30_itemid": (
        "not kept (collaborative_shrink 30 on the per-item recipe, seed 0 at mix 1.0: Recall@10 0.12300 / NDCG@10 "
        "0.07217, plain 0.11413 / 0.06373, at 5,572 steps; -1.4 % / -2.8 %, plain -0.5 % / -1.2 %, against the "
        "recipe's 3 seeds on the same AMD machine, 0.12479 +- 0.00056 / 0.07423 +- 0.00014; at its best mix 2.0 "
        "0.12287 / 0.07245; the codebook keeps 10,659 distinct 3-code prefixes against shrink 10's 11,078, longest "
        "collision 28 against 22: shrinking items with a few dozen users to their content merges more of them, and "
        "the shrink stays 10)"),
}, "beauty_levers_xeon_20min_dense0125": {
    "grouped_collab60_dense0125_shrink10_itemid": (
        "not kept (the dense head at weight 0.125 with per-item vectors, seed 0 at its best mix 1.0: Recall@10 "
        "0.12525 / NDCG@10 0.07385, plain 0.11413 / 0.06413, at 4,741 steps, 1,011 samples/s; +0.4 % / -0.5 %, plain "
        "-0.5 % / -0.5 %, against weight 0.25's 3 seeds on the same AMD machine, 0.12479 / 0.07423: level; git, lint "
        "and a chart ran beside its first 12 minutes, so its steps are a few percent short; with 0.5's -1.3 % / "
        "-2.3 % the weight stays 0.25)"),
}, "beauty_levers_xeon_20min_dense050freeout": {
    "grouped_collab60_dense050_shrink10_itemid_freeout": (
        "not kept (the dense head at weight 0.5 on free output vectors, seed 0 at its best mix 0.5: Recall@10 0.12387"
        " / NDCG@10 0.07460, plain 0.11350 / 0.06638; at mix 1.0 0.12175 / 0.07342, -1.2 % / +1.5 % against weight "
        "0.25's seed 0 retrained the same day on the same machine (beauty_levers_xeon_20min_freeout_ref, 0.12325 / "
        "0.07234) and -3.9 % / -2.1 % against weight 0.25's 3 seeds of an earlier day (0.12675 / 0.07497, "
        "beauty_levers_xeon_20min_freeout); the dense head alone 0.11713 against 0.11463 the same day: level, so the "
        "weight stays 0.25)"),
}, "beauty_levers_xeon_20min_freeout_ref": {
    "grouped_collab60_dense025_shrink10_itemid_freeout": (
        "the reference for the levers measured on 2026-12-04: the committed recipe (free output vectors), seed 0, "
        "retrained on the same AMD machine type as beauty_levers_xeon_20min_freeout's seed 0: Recall@10 0.12325 / "
        "NDCG@10 0.07234 at mix 1.0, plain 0.11450 / 0.06507, at 6,693 steps (1,428 samples/s) against that seed's "
        "0.12787 / 0.07546 at 5,786 steps: the same seed reads 3.6 % / 4.1 % apart on two days (the wall-clock budget"
        " sets the steps and the schedule), the spread a one-seed lever is read against; a 2-minute test run shared "
        "the CPU in its 13th minute"),
}, "beauty_levers_xeon_20min_lasttrig": {
    "grouped_collab60_dense025_shrink10_itemid_freeout_lasttrig": (
        "not kept (last_item_trigger on the committed recipe: the most recent history item as the instruction's "
        "trigger, seed 0 at its best mix 0.5: Recall@10 0.12062 / NDCG@10 0.07372, plain 0.11325 / 0.06723; at mix "
        "1.0 0.11937 / 0.07312, plain 0.11313 / 0.06741: -3.1 % / +1.1 %, plain -1.2 % / +3.6 %, against the same "
        "day's reference (beauty_levers_xeon_20min_freeout_ref, 0.12325 / 0.07234) at 6,516 steps against its 6,693; "
        "the dense head alone 0.11425 against 0.11463; its training loss ends at 2.93 against 3.38: the transitions "
        "are learnt, but they do not rank held-out targets better, within the 4 % one seed reads apart on two days)"),
}, "beauty_levers_xeon_20min_ref": {
    "grouped_collab60": "the user-token lever's reference: the hour's member recipe at 20 minutes re-measured in that "
                        "lever's session, 2 seeds (the machine ran faster than for the 20-minute table's reference: "
                        "7,723-8,335 steps against 6,468)",
    "grouped_collab60_user2000": "not kept (2 seeds: Recall@10 0.10969 / NDCG@10 0.06382 against the reference's "
                                 "0.10869 / 0.06510, +0.9 % / -2.0 %, plain -1.0 % / -2.3 %, each within the "
                                 "reference's seed std of 0.0029 / 0.0030); user_buckets stays 0",
}, "beauty_levers_xeon_ref": {
    "grouped_collab60": "the reference of the recency lever: the recipe's seed 0 re-measured in that lever's session "
                        "(the machine ran faster than for this table's 3 seeds: 2,868 steps against 2,231)",
}}


def lever_spec(name: str, seed: int, args) -> dict:
    """What a lever's measurement depends on (its cache key): the lever's overrides, seed, budget and evaluation."""
    model_over, train_over = LEVERS[name]
    codebook = CODEBOOKS.get(name, {})
    return {"lever": name, "seed": seed, "model": {**BASE_MODEL, **model_over}, "train": {**BASE_TRAIN, **train_over},
            "budget_min": args.budget_min, "version": args.version, "eval_rows": args.eval_rows, "beam": args.beam,
            **({"codebook": codebook} if codebook else {}), **({"members": MEMBERS[name]} if name in MEMBERS else {})}


def cached_path(spec: dict):
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return oxy_home() / "bench" / "levers" / f"{spec['lever']}-s{spec['seed']}-{key}.json"


def restore_cache(table: dict, args) -> list[str]:
    """Put an earlier table's runs back into the lever cache (a fresh checkout has none), so a sweep retrains only
    the levers that are new or whose definition changed since: a run is restored only where its recorded spec
    equals the lever's spec today. Returns the restored runs' names."""
    restored = []
    for name, row in table.get("levers", {}).items():
        if name not in LEVERS:
            continue
        for run in row.get("runs", []):
            spec = lever_spec(name, run["seed"], args)
            path = cached_path(spec)
            if {k: run.get(k) for k in spec} == spec and not path.exists():
                write_json(path, run)
                restored.append(f"{name}-s{run['seed']}")
    return restored


def run_lever(paths: DataPaths, name: str, seed: int, args) -> dict:
    spec = lever_spec(name, seed, args)
    model_over, train_kw, codebook = spec["model"], spec["train"], spec.get("codebook", {})
    done = cached_path(spec)
    if done.exists() and not args.fresh:
        return json.loads(done.read_text())
    n = MEMBERS.get(name, 1)
    out = oxy_home() / "bench" / "levers" / "model"
    shutil.rmtree(out, ignore_errors=True)
    print(f"{name} (seed {seed}): {args.budget_min} min of training", flush=True)
    version = derived_codebook(paths, args.version, codebook)
    models, dirs, steps, train_s, losses = [], [], 0, 0.0, []
    for i in range(n):
        cfg = TrainConfig(steps=10**7, budget_s=args.budget_min * 60 / n, warmup=200, seed=seed * n + i,
                          log_every=50, ckpt_every=10**6, engine="torch", **train_kw)
        member_out = out / f"member{i}" if n > 1 else out
        dirs.append(member_out)
        # the levers are read on the beam's own candidates (their figures predate dense_candidates): decode-time
        # candidates are measured apart, on these same runs' models (beauty_rare)
        info, model, cat, data, trie = pretrain(paths, version, "small", cfg, out_dir=member_out,
                                                **{"dense_candidates": 0, **model_over})
        train_s += json.loads((latest_checkpoint(member_out / "checkpoints") / "state.json").read_text())["trained_s"]
        models.append(model)
        steps += info["steps"]
        losses.append(info["final_loss"])
    model = GeneratorEnsemble(models) if n > 1 else models[0]
    info = {**info, "steps": steps, "params": info["params"] * n, "final_loss": float(np.mean(losses))}
    rows = split_rows(data, "valid", cat.pad, args.eval_rows)
    t0 = time.perf_counter()
    c = candidates(model, data, trie, rows, args.beam, desc="valid candidates")
    target = data.tensors["target"].numpy()[rows]
    mixes = MIXES if model.cfg.dense_weight > 0 else (0.0,)
    by_mix = {str(m): {**scored(c, target, m, True), "plain": scored(c, target, m, False)} for m in mixes}
    best = max(by_mix, key=lambda m: by_mix[m]["recall@10"] + by_mix[m]["ndcg@10"])
    result = {**spec, **{k: by_mix[best][k] for k in KEYS}, "plain": by_mix[best]["plain"], "best_mix": best,
              "by_mix": by_mix, "params": info["params"], "steps": info["steps"],
              "samples_per_s": round(info["steps"] * train_kw["batch_size"] / train_s, 1),
              "final_loss": info["final_loss"], "train_wall_s": round(train_s, 1),
              "eval_wall_s": round(time.perf_counter() - t0, 1), "evaluated": int(len(rows))}
    if train_kw.get("ema_decay", 0) > 0:  # the same run read with its raw weights: the average's paired effect
        for m, member_out in zip(models, dirs):
            load_checkpoint(latest_checkpoint(member_out / "checkpoints"), m)
        c = candidates(model, data, trie, rows, args.beam, desc="valid candidates, raw weights")
        result["raw_weights"] = {**scored(c, target, 0.0, True), "plain": scored(c, target, 0.0, False)}
    write_json(done, result)
    print(name, {k: result[k] for k in (*KEYS, "plain", "best_mix", "steps")}, flush=True)
    return result


def summarise(name: str, rs: list[dict], decisions: dict[str, str] = DECISIONS) -> dict:
    """A lever's row: its first seed's best mix, read for every seed (mean, and std over several seeds)."""
    mix = rs[0]["best_mix"]
    at = [r["by_mix"][mix] for r in rs]
    row = {k: round(float(np.mean([m[k] for m in at])), 5) for k in KEYS}
    row["plain"] = {k: round(float(np.mean([m["plain"][k] for m in at])), 5) for k in KEYS}
    if all("raw_weights" in r for r in rs):  # a weight-averaging lever: the same runs read with their raw weights
        raw = [r["raw_weights"] for r in rs]
        row["raw_weights"] = {**{k: round(float(np.mean([m[k] for m in raw])), 5) for k in KEYS},
                              "plain": {k: round(float(np.mean([m["plain"][k] for m in raw])), 5) for k in KEYS}}
    if len(rs) > 1:
        row["std"] = {k: round(float(np.std([m[k] for m in at], ddof=1)), 5) for k in KEYS}
        row["std_plain"] = {k: round(float(np.std([m["plain"][k] for m in at], ddof=1)), 5) for k in KEYS}
    return {**row, "mix": mix, "seeds": [r["seed"] for r in rs], "kept": decisions.get(name, "not decided"),
            "steps": rs[0]["steps"], "samples_per_s": rs[0]["samples_per_s"], "runs": rs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset-path", default=None)
    ap.add_argument("--budget-min", type=float, default=10.0)
    ap.add_argument("--levers", default=",".join(LEVERS))
    ap.add_argument("--seeds-of", default=RECIPE, help="the levers (comma-separated) trained with every one of "
                                                        "--seeds (the others: seed 0)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--version", default="V4")
    ap.add_argument("--beam", type=int, default=50)
    ap.add_argument("--eval-rows", type=int, default=8000, help="first N validation users (0: all)")
    ap.add_argument("--fresh", action="store_true", help="retrain levers already measured")
    ap.add_argument("--name", default="beauty_levers",
                    help="results name (benchmarks/results/<name>.json): another budget's table beside the 10-minute "
                         "one")
    ap.add_argument("--restore-from", default=None,
                    help="a committed levers JSON whose runs fill the cache first (only the levers it lacks train)")
    args = ap.parse_args()
    if args.restore_from:
        print("restored", restore_cache(json.loads(Path(args.restore_from).read_text()), args), flush=True)
    paths = beauty_paths()
    prepare_data(paths, args.dataset_path, [args.version])
    seeds = [int(s) for s in args.seeds.split(",")]
    decisions = {**DECISIONS, **TABLE_DECISIONS.get(args.name, {})}
    levers = {name: summarise(name, [run_lever(paths, name, s, args)
                                     for s in (seeds if name in args.seeds_of.split(",") else [0])], decisions)
              for name in args.levers.split(",")}
    base = levers.get("baseline")
    for row in levers.values():
        if base:
            row["ratio_to_baseline"] = {k: round(row[k] / max(base[k], 1e-9), 3) for k in KEYS}
    write_result(args.name, {"split": "valid", "budget_s": args.budget_min * 60, "recipe": RECIPE,
                             "kept_decided_at": f"{args.budget_min:g} minutes (TABLE_DECISIONS)"
                             if args.name in TABLE_DECISIONS else "10 minutes (DECISIONS)", "levers": levers},
                 {"budget_min": args.budget_min, "eval_rows": args.eval_rows, "beam": args.beam})
    for name, row in levers.items():
        print(f"{name:24s} R@10 {row['recall@10']:.4f} N@10 {row['ndcg@10']:.4f} plain {row['plain']} "
              f"mix {row['mix']} {row['kept']}")


if __name__ == "__main__":
    main()
