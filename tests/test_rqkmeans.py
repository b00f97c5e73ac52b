"""RQ-KMeans (faiss): recovers structure, unique codes after disambiguation, clear errors on bad input."""

import numpy as np
import pytest

from oxy_dagster.sid.rqkmeans import RQKMeans, default_width, disambiguate


def _clustered(n_clusters=16, per=40, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, dim)) * 5
    labels = np.repeat(np.arange(n_clusters), per)
    return (centers[labels] + rng.normal(size=(len(labels), dim)) * 0.3).astype(np.float32), labels


def test_level1_recovers_clusters_and_residuals_shrink():
    x, labels = _clustered()
    rq = RQKMeans(levels=3, width=16, niter=25, seed=1)
    codes = rq.fit(x)
    # every true cluster maps to a single level-1 code (purity 1)
    for c in range(16):
        assert len(set(codes[labels == c, 0])) == 1
    err = [((x - sum(rq.centroids[i][codes[:, i]] for i in range(k))) ** 2).sum(1).mean() for k in (1, 2, 3)]
    assert err[0] > err[1] > err[2]
    np.testing.assert_array_equal(rq.encode(x), codes)  # nearest assignment is what fit returned
    again = RQKMeans(levels=3, width=16, niter=25, seed=1).fit(x)
    np.testing.assert_array_equal(again, codes)  # deterministic


def test_disambiguation_gives_unique_tuples_deterministically():
    codes = np.array([[0, 0, 0], [0, 0, 0], [1, 2, 3], [0, 0, 0], [1, 2, 3], [5, 5, 5]])
    x = np.array([[3.0], [1.0], [0.0], [2.0], [0.0], [9.0]], dtype=np.float32)
    recon = np.zeros_like(x)
    extra = disambiguate(codes, x, recon, ["a", "b", "c", "d", "e", "f"])
    assert extra.tolist() == [2, 0, 0, 1, 1, 0]  # by distance, ties by item id (c before e)
    full = np.concatenate([codes, extra[:, None]], 1)
    assert len(np.unique(full, axis=0)) == len(codes)


def test_balanced_assignment_flattens_load():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(900, 8)), rng.normal(size=(100, 8)) + 6]).astype(np.float32)
    plain = RQKMeans(levels=1, width=10, seed=0).fit(x)
    bal = RQKMeans(levels=1, width=10, seed=0, balanced=True, slack=0.1).fit(x)
    assert np.bincount(bal[:, 0]).max() <= 110 < np.bincount(plain[:, 0]).max()


def test_sampled_training_and_width_rule():
    x, _ = _clustered(per=100)
    codes = RQKMeans(levels=2, width=16, train_size=400, seed=0).fit(x)
    assert codes.shape == (1600, 2) and codes.max() < 16
    assert default_width(12101) == 256 and default_width(10) == 16 and default_width(10**9) == 8192


def test_bad_input_is_a_clear_error():
    x, _ = _clustered()
    with pytest.raises(ValueError, match="at least width=1024"):
        RQKMeans(width=1024).fit(x)
    x[3] = np.nan
    x[7] = 0.0
    with pytest.raises(ValueError, match=r"1 vector\(s\) with NaN/inf \(e.g. \['i3'\]\).*1 all-zero .*\['i7'\]"):
        RQKMeans(width=16).fit(x, ids=np.array([f"i{i}" for i in range(len(x))]))
    with pytest.raises(RuntimeError, match="before fit"):
        RQKMeans().encode(x)
