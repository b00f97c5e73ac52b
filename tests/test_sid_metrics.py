"""SID metrics on hand-made codes with known answers."""

import numpy as np
import pandas as pd
import pytest

from oxy_dagster.sid.metrics import collisions, coverage, load_balance, purity, sid_metrics

# 8 items, width 2: tuples (0,0,0) x3, (0,0,1) x1, (1,1,1) x2, (1,0,0) x1, (0,1,0) x1
CODES = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1], [1, 1, 1], [1, 1, 1], [1, 0, 0], [0, 1, 0]])
CATS = pd.DataFrame({
    "cate1": ["A", "A", "B", "A", "C", "C", "A", None],
    "cate2": ["A>x", "A>y", "B>z", "A>x", "C>q", "C>r", "A>x", None],
})


def test_coverage_is_joint_path_occupancy():
    cov = coverage(CODES, width=2)
    assert cov == {"coverage_l1": 1.0, "coverage_l2": 4 / 4, "coverage_l3": 5 / 8}
    assert coverage(np.array([[3, 1, 0]]), width=4)["coverage_l2"] == 1 / 16


def test_purity_is_mean_dominance_over_tuples():
    p = purity(CODES, CATS)
    # tuples: (0,0,0) A,A,B -> 2/3 ; (0,0,1) A -> 1 ; (0,1,0) None -> 1 ; (1,0,0) A -> 1 ; (1,1,1) C,C -> 1
    assert p["purity_cate1"] == pytest.approx((2 / 3 + 1 + 1 + 1 + 1) / 5)
    # cate2: (0,0,0) A>x,A>y,B>z -> 1/3 ; (1,1,1) C>q,C>r -> 1/2 ; singletons 1
    assert p["purity_cate2"] == pytest.approx((1 / 3 + 1 + 1 + 1 + 1 / 2) / 5)


def test_collision_quantiles_count_items_per_tuple():
    c = collisions(CODES)
    assert c["unique_tuples"] == 5 and c["collision_max"] == 3
    big = np.repeat(np.arange(1000)[:, None], 1, 1).repeat(3, 1)  # 1000 distinct tuples
    big = np.concatenate([big, np.zeros((49, 3), int)])  # tuple 0 now holds 50 items
    c = collisions(big)
    assert (c["collision_p90"], c["collision_p99"], c["collision_p999"]) == (1, 1, 50)


def test_load_balance_is_size_over_uniform():
    codes = np.array([[0, 0, 0]] * 6 + [[1, 0, 0]] * 2 + [[2, 0, 0]] * 0 + [[3, 1, 1]] * 4)
    lb = load_balance(codes, width=4)  # sizes 6,2,0,4 over uniform 3 -> 2, 2/3, 0, 4/3
    ratios = np.array([0, 2 / 3, 4 / 3, 2])
    assert lb["balance_p25"] == pytest.approx(np.quantile(ratios, 0.25))
    assert lb["balance_p75"] == pytest.approx(np.quantile(ratios, 0.75))
    assert lb["balance_p90"] == pytest.approx(np.quantile(ratios, 0.9))
    uniform = load_balance(np.array([[i, i, i] for i in range(4)] * 5), width=4)
    assert uniform["balance_p25"] == uniform["balance_p90"] == 1.0


def test_all_metric_names_present():
    m = sid_metrics(CODES, 2, CATS)
    for k in ("coverage_l1", "coverage_l2", "coverage_l3", "purity_cate1", "collision_p90", "collision_p99",
              "collision_p999", "balance_p25", "balance_p75", "balance_p90"):
        assert k in m
