"""Closed-loop HTTP load on the recommendation service, from its own process (so the client's Python does not
share the server's interpreter): ``python -m benchmarks.serving_load URL BODIES.json CONCURRENCY N``.

Each of CONCURRENCY threads keeps one keep-alive connection and sends requests back to back (bodies taken
round-robin) until N requests were sent in all; prints qps, latency percentiles and the error count as JSON.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlparse

import numpy as np


def run(url: str, bodies: list[dict], concurrency: int, n: int) -> dict:
    target = urlparse(url)
    payloads = [json.dumps(b).encode() for b in bodies]
    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(n))

    def worker():
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/recommend", payloads[i % len(payloads)],
                             {"content-type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
            dt = time.perf_counter() - t0
            with lock:
                (latencies if ok else errors).append(dt)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    pct = {f"p{q}_ms": round(float(np.percentile(ms, q)), 1) if len(ms) else None for q in (50, 99)}
    return {"qps": round(len(latencies) / wall, 1), **pct, "errors": len(errors), "requests": n,
            "concurrency": concurrency, "wall_s": round(wall, 2)}


if __name__ == "__main__":
    url, bodies_file, conc, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(run(url, json.loads(open(bodies_file).read()), conc, n)))
