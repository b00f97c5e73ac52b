"""The recommendation service for real: a bundle from a trained generator, the MLflow registry, and uvicorn
on a free loopback port, driven over HTTP (validation, pools, cold start, overload, store outage, reload)."""

import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from oxy_dagster.model.config import TrainConfig
from oxy_dagster.model.pipeline import build_pretrained
from oxy_dagster.net import free_port
from oxy_dagster.reasoning.store import InstructionRecord, make_store
from oxy_dagster.serving.bundle import load_bundle
from oxy_dagster.serving.deploy import DeployConfig, check_bundle, choose, export, fill_histories

ROOT = Path(__file__).resolve().parent.parent
NAME = "serving-test"  # the generator folder models/serving-test-V1 of the shared shop


@pytest.fixture(scope="module")
def bundle(shop, tmp_path_factory):
    build_pretrained(shop, "V1", "tiny", TrainConfig(steps=60, batch_size=128, warmup=5, lr=3e-3, engine="torch"),
                     out_dir=shop.model("V1", NAME))
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    export(shop, "V1", [shop.model("V1", NAME)], out, {"chosen": NAME})
    return out


@pytest.fixture(scope="module")
def store_url(shop, bundle, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'users.db'}"
    store = make_store(url)
    fill_histories(store, shop, 300)
    store.close()
    return url


class Server:
    def __init__(self, args: list[str], env: dict | None = None, log: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, "-m", "oxy_dagster.serving", "--port", str(self.port), *args],
                                     cwd=ROOT, env={**os.environ, **(env or {})}, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            assert self.proc.poll() is None, f"server exited {self.proc.returncode}"
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise TimeoutError("the service did not become ready in 120 s")

    def post(self, body, **kw):
        return requests.post(f"{self.url}/v1/recommend", json=body, timeout=60, **kw)

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(bundle, store_url, tmp_path_factory):
    s = Server(["--bundle", str(bundle), "--store", store_url, "--max-batch", "8", "--max-wait-ms", "5"],
               log=tmp_path_factory.mktemp("srv") / "server.log")
    yield s
    s.stop()


def _users(shop, n=5):
    import pyarrow.parquet as pq

    df = pq.read_table(shop.samples, columns=["user_id", "split"]).to_pandas()
    return df[df.split == "test"].user_id.unique()[:n].tolist()


@pytest.mark.slow
def test_bundle_reproduces_offline_evaluation_and_choice(shop, bundle):
    from oxy_dagster.sid.text import shared_text_encoder

    check = check_bundle(shop, "V1", [shop.model("V1", NAME)], bundle, rows=40, beam=30,
                         text_encoder=shared_text_encoder())
    assert check == {"checked_users": 40, "same_top10": 40}
    served = load_bundle(bundle)
    assert served.manifest["sid_version"] == "V1" and set(served.pools) == {"homepage", "channel", "related", "cart",
                                                                          "search"}
    best, figures = choose(shop, "V1", DeployConfig(candidates=f"{NAME},no-such-model", select_rows=50, beam=10))
    assert best == NAME and set(figures) == {NAME} and figures[NAME]["evaluated"] == 50


@pytest.mark.slow
def test_an_ensemble_candidate_is_chosen_exported_and_served_as_offline_eval_decodes_it(shop, bundle, tmp_path):
    """``a+b`` in DeployConfig.candidates: two generators decoded as one (GeneratorEnsemble), compared on validation
    with the single ones, exported as one bundle (format /2) whose served top-10 equals offline beam search's. The
    second member has hashed user-ID vectors (``user_buckets``), so the equal lists also say the service hashes the
    request's user id as training hashed the samples'."""
    from oxy_dagster.model.ensemble import GeneratorEnsemble
    from oxy_dagster.sid.text import shared_text_encoder

    other = f"{NAME}-seed1"
    build_pretrained(shop, "V1", "tiny", TrainConfig(steps=40, batch_size=128, warmup=5, lr=3e-3, seed=1,
                                                     engine="torch"), out_dir=shop.model("V1", other), user_buckets=64)
    pair = f"{NAME}+{other}"
    best, figures = choose(shop, "V1", DeployConfig(candidates=f"{NAME},{other},{pair}", select_rows=50, beam=10))
    assert set(figures) == {NAME, other, pair} and figures[pair]["evaluated"] == 50 and best in figures
    from oxy_dagster.serving.deploy import main as export_cli

    out = tmp_path / "pair"  # the command a user runs for generators trained outside the graph
    export_cli([str(shop.model("V1", NAME)), str(shop.model("V1", other)), "--data", str(shop.root), "--version", "V1",
                "--out", str(out), "--check", "10"])
    served = load_bundle(out)
    assert isinstance(served.model, GeneratorEnsemble) and len(served.model.members) == 2
    assert served.manifest["format"] == "oxyrec-bundle/2" and len(served.manifest["members"]) == 2
    check = check_bundle(shop, "V1", [shop.model("V1", NAME), shop.model("V1", other)], out, rows=30, beam=30,
                         text_encoder=shared_text_encoder())
    assert check == {"checked_users": 30, "same_top10": 30}
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "format": "oxyrec-bundle/9"}))
    with pytest.raises(ValueError, match="not an OxyRec bundle"):
        load_bundle(out)


@pytest.mark.slow
def test_registry_versions_and_alias(bundle, tmp_path):
    import mlflow

    from oxy_dagster.serving.registry import register_bundle, resolve_alias

    # the fluent API remembers the last experiment id of another store (as after the SID tests in one
    # pytest process): registering must not start its run in that id
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'other.db'}")
    for name in ("a", "b", "c"):
        mlflow.set_experiment(name)
    uri = f"sqlite:///{tmp_path / 'reg.db'}"
    v1 = register_bundle(bundle, uri, name="oxyrec-test")
    v2 = register_bundle(bundle, uri, name="oxyrec-test")
    assert (v1, v2) == ("1", "2")
    version, local = resolve_alias(tmp_path / "cache", uri, name="oxyrec-test")
    assert version == "2" and (local / "manifest.json").exists() and (local / "model.safetensors").exists()
    assert load_bundle(local).catalogue.fingerprint() == load_bundle(bundle).catalogue.fingerprint()


@pytest.mark.slow
def test_recommend_over_http(server, shop, store_url):
    served = load_bundle(server_bundle(server))
    cat = served.catalogue
    user = _users(shop, 1)[0]
    r = server.post({"user_id": user, "scenario": "homepage", "k": 10, "beam": 64})
    assert r.status_code == 200, r.text
    body = r.json()
    items = [x["item_id"] for x in body["items"]]
    assert len(items) == 10 == len(set(items)) and set(items) <= set(cat.item_ids)
    for x in body["items"]:  # each item's SID is its catalogue code tuple
        assert x["sid"] == cat.codes[cat.row[x["item_id"]]].tolist()
    assert [x["score"] for x in body["items"]] == sorted((x["score"] for x in body["items"]), reverse=True)
    assert body["history"] == "store" and body["instruction"] == "default" and body["cold_start"] is False
    # the stored instruction is read by user id (no LLM call) and changes what the decoder sees
    store = make_store(store_url)
    store.put_many([InstructionRecord(user, "looking for winter boots", "cold city", np.ones(384, np.float32) / 20,
                                      "t", time.time(), "nearline")])
    store.close()
    r2 = server.post({"user_id": user, "scenario": "homepage", "k": 10, "beam": 64}).json()
    assert r2["instruction"] == "stored"
    assert server.post({"user_id": user, "scenario": "homepage", "k": 10, "beam": 64,
                        "use_instruction": False}).json()["items"] == body["items"]
    # a candidate pool, named or explicit, and the history filter
    pool = set(served.pools["cart"].tolist())
    got = server.post({"user_id": user, "scenario": "cart", "k": 5, "beam": 32, "pool": "cart"}).json()
    assert {cat.row[x["item_id"]] for x in got["items"]} <= pool
    some = list(cat.item_ids[:7])
    got = server.post({"user_id": user, "scenario": "homepage", "k": 10, "beam": 32, "pool_items": some}).json()
    assert {x["item_id"] for x in got["items"]} == set(some)  # fewer candidates than k: all of them
    hist = list(cat.item_ids[10:30])
    got = server.post({"user_id": user, "scenario": "homepage", "k": 20, "beam": 64, "history": hist,
                       "exclude_history": True}).json()
    assert got["history"] == "request" and not {x["item_id"] for x in got["items"]} & set(hist)
    # an unknown user takes the cold-start path
    cold = server.post({"user_id": "nobody-here", "scenario": "homepage", "k": 5, "beam": 16}).json()
    assert cold["cold_start"] is True and cold["history"] == "none" and len(cold["items"]) == 5
    # beam sampling: seeded, valid, and a different list than beam search at a high temperature
    s1 = server.post({"user_id": user, "scenario": "homepage", "k": 10, "beam": 64, "mode": "sample",
                      "temperature": 2.0, "top_p": 0.95, "seed": 7}).json()
    s2 = server.post({"user_id": user, "scenario": "homepage", "k": 10, "beam": 64, "mode": "sample",
                      "temperature": 2.0, "top_p": 0.95, "seed": 7}).json()
    assert s1["items"] == s2["items"] and s1["items"] != body["items"]
    assert {x["item_id"] for x in s1["items"]} <= set(cat.item_ids)


def server_bundle(server) -> Path:
    args = server.proc.args
    return Path(args[args.index("--bundle") + 1])


@pytest.mark.slow
def test_bad_requests_get_clear_errors(server, bundle):
    bad_json = requests.post(f"{server.url}/v1/recommend", data="{not json",
                             headers={"content-type": "application/json"}, timeout=10)
    assert bad_json.status_code == 400
    cases = [({"user_id": "u", "scenario": "moon"}, "scenario"), ({"user_id": "u", "scenario": "homepage", "beam": 0},
             "beam"), ({"user_id": "u", "scenario": "homepage", "beam": 513}, "beam"),
             ({"user_id": "u", "scenario": "homepage", "k": 30, "beam": 20}, "k"),
             ({"user_id": "u", "scenario": "related", "trigger_item": "no-such-item"}, "trigger_item"),
             ({"user_id": "u", "scenario": "homepage", "history": ["x"] * 3000}, "history"),
             ({"user_id": "u", "scenario": "homepage", "pool": "vip"}, "pool"),
             ({"scenario": "homepage"}, "user_id")]
    for body, field in cases:
        r = server.post(body)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert field in [str(x) for d in r.json()["detail"] for x in d["loc"]], (field, r.text)
    huge = requests.post(f"{server.url}/v1/recommend", data=json.dumps({"user_id": "u", "scenario": "homepage",
                                                                         "query": "x" * (2 << 20)}),
                         headers={"content-type": "application/json"}, timeout=30)
    assert huge.status_code == 413
    assert requests.get(f"{server.url}/healthz", timeout=5).json() == {"status": "ok"}


@pytest.mark.slow
def test_concurrent_requests_are_micro_batched_and_counted(server, shop):
    users = _users(shop, 24)
    with cf.ThreadPoolExecutor(24) as pool:
        codes = list(pool.map(lambda u: server.post({"user_id": u, "scenario": "homepage", "k": 10,
                                                     "beam": 128}).status_code, users))
    assert codes == [200] * len(users)
    metrics = requests.get(f"{server.url}/metrics", timeout=5).text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines()
              if line and not line.startswith("#")}
    assert values["oxyrec_batch_size_sum"] / values["oxyrec_batch_size_count"] > 1.5  # batches merged requests
    assert values['oxyrec_requests_total{status="200"}'] >= len(users)
    assert values["oxyrec_request_seconds_count"] >= len(users)
    model = requests.get(f"{server.url}/v1/model", timeout=5).json()
    assert model["sid_version"] == "V1" and model["items"] > 1000


@pytest.mark.slow
def test_full_queue_is_refused_and_a_down_store_degrades(bundle, tmp_path):
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    srv = Server(["--bundle", str(bundle), "--store", down, "--max-batch", "1", "--max-queue", "2"],
                 log=tmp_path / "server.log")
    try:
        with cf.ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda i: srv.post({"user_id": f"u{i}", "scenario": "homepage", "k": 10,
                                                        "beam": 512}), range(32)))
        codes = [a.status_code for a in answers]
        assert set(codes) <= {200, 503} and codes.count(503) > 0 and codes.count(200) > 0, codes
        assert all(a.headers.get("retry-after") == "1" for a in answers if a.status_code == 503)
        ok = next(a for a in answers if a.status_code == 200).json()
        assert ok["instruction"] == "default" and ok["history"] == "none"  # the store is down: cold start, no 500
        metrics = requests.get(f"{srv.url}/metrics", timeout=5).text
        assert 'oxyrec_errors_total{kind="store"}' in metrics and 'oxyrec_errors_total{kind="overloaded"}' in metrics
        assert requests.get(f"{srv.url}/healthz", timeout=5).ok
    finally:
        srv.stop()


@pytest.mark.slow
def test_new_champion_is_picked_up_without_dropping_requests(bundle, tmp_path):
    from oxy_dagster.serving.registry import register_bundle

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri, "OXY_HOME": str(tmp_path / "home"), "OXY_RELOAD_TOKEN": "s3cret"}
    register_bundle(bundle, uri)
    srv = Server(["--poll-s", "1", "--store", f"sqlite:///{tmp_path / 'none.db'}"], env=env,
                 log=tmp_path / "server.log")
    try:
        seen, stop = [], time.time() + 30

        def client():
            while time.time() < stop:
                r = srv.post({"user_id": "u1", "scenario": "homepage", "k": 5, "beam": 32})
                seen.append((r.status_code, r.json().get("model_version") if r.ok else None))
                if any(v == "2" for _, v in seen[-3:]):
                    return

        with cf.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(client) for _ in range(4)]
            time.sleep(2)
            register_bundle(bundle, uri)  # version 2 becomes the champion
            for f in futures:
                f.result()
        assert {c for c, _ in seen} == {200}, seen  # nothing dropped while the model was swapped
        assert {v for _, v in seen} == {"1", "2"} and seen[-1][1] == "2"
        assert requests.post(f"{srv.url}/v1/admin/reload", timeout=60).status_code == 401
        reloaded = requests.post(f"{srv.url}/v1/admin/reload", headers={"authorization": "Bearer s3cret"},
                                 timeout=60)
        assert reloaded.status_code == 200 and reloaded.json() == {"model_version": "2"}
    finally:
        srv.stop()
