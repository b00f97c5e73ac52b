"""Benchmark: RQ-KMeans 3 x 8192 (the seed's codebook) on 1M synthetic 256-d item vectors.

The vectors come from a hierarchical Gaussian mixture (4,096 topics x sub-topics,
L2-normalized) so the codebook has structure to find. Each level trains faiss
k-means on a sample (``--train-size``, default 262,144 = 32 points per
centroid) and then assigns all 1M residuals. Records wall time and the peak
RSS of the process. Usage: ``python -m benchmarks.rqkmeans_scale [--n 1000000]``.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from benchmarks.common import PeakRSS, write_result
from oxy_dagster.sid.metrics import collisions, coverage, load_balance
from oxy_dagster.sid.rqkmeans import RQKMeans


def synthetic_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(4096, dim)).astype(np.float32)
    sub = rng.normal(size=(4096, 8, dim)).astype(np.float32) * 0.5
    t = rng.integers(0, 4096, n)
    s = rng.integers(0, 8, n)
    x = topics[t] + sub[t, s] + rng.normal(size=(n, dim)).astype(np.float32) * 0.25
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--width", type=int, default=8192)
    ap.add_argument("--train-size", type=int, default=262_144)
    ap.add_argument("--niter", type=int, default=20)
    args = ap.parse_args()
    x = synthetic_vectors(args.n, args.dim)
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        codes = RQKMeans(levels=3, width=args.width, niter=args.niter, train_size=args.train_size).fit(x)
        wall = time.perf_counter() - t0
    m = {**coverage(codes, args.width), **collisions(codes), **load_balance(codes, args.width)}
    figures = {"wall_s": round(wall, 1), "peak_rss_mb": rss.peak_mb, "n": args.n, "dim": args.dim,
               "width": args.width, "levels": 3, "train_size": args.train_size, "niter": args.niter,
               "faiss_threads": faiss.omp_get_max_threads(),
               **{k: round(v, 6) for k, v in m.items()}}
    print(write_result("rqkmeans_scale", figures).read_text())


if __name__ == "__main__":
    main()
