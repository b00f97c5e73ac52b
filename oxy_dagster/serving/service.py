"""The recommendation service: FastAPI over a ``Runtime``, with micro-batching, metrics and hot reload.

Endpoints: ``POST /v1/recommend``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (Prometheus text),
``GET /v1/model``, ``POST /v1/admin/reload`` (only when ``OXY_RELOAD_TOKEN`` is set; bearer token).
Malformed JSON -> 400; an invalid field -> 422 naming it; a full queue -> 503 with Retry-After.
A new model is loaded beside the serving one and swapped in between batches, so no request is dropped.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field

from ..data.contract import SCENARIOS
from .batcher import MicroBatcher, Overloaded
from .runtime import RecRequest, Runtime


@dataclass
class ServiceConfig:
    max_batch: int = 32  # requests decoded together (1: no micro-batching)
    max_wait_ms: float = 2.0  # how long the first request of a batch waits for others
    max_queue: int = 256  # requests waiting beyond this are refused with 503
    max_beam: int = 512
    max_body_bytes: int = 1 << 20
    poll_s: float = 30.0  # how often the registry alias is checked for a new champion (0: never)


class RecommendBody(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    scenario: Literal[SCENARIOS]  # type: ignore[valid-type]
    trigger_item: str | None = Field(default=None, max_length=128)
    query: str | None = Field(default=None, max_length=512)
    history: list[str] | None = Field(default=None, max_length=2000)
    k: int = Field(default=10, ge=1, le=512)
    beam: int = Field(default=256, ge=1, le=512)
    mode: Literal["beam", "sample"] = "beam"
    temperature: float = Field(default=1.0, gt=0, le=10)
    top_k: int = Field(default=0, ge=0, le=4096)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int = 0
    pool: str | None = None
    pool_items: list[str] | None = Field(default=None, max_length=50_000)
    exclude_history: bool = False
    use_instruction: bool = True  # read the user's stored instruction (False: the model's default)


def _invalid(field: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [{"loc": ["body", field], "msg": message}]})


class ModelHolder:
    """The serving runtime and how to load another; ``swap`` is atomic for the batches that follow."""

    def __init__(self, load: Callable[[], tuple[str, Runtime]], current_version: Callable[[], str] | None = None):
        self.load, self.current_version = load, current_version
        self.runtime: Runtime | None = None
        self.source_version: str | None = None

    def reload(self) -> str:
        version, runtime = self.load()
        self.runtime, self.source_version = runtime, version  # in-flight batches keep their runtime
        return version


def create_app(holder: ModelHolder, cfg: ServiceConfig | None = None) -> FastAPI:
    cfg = cfg or ServiceConfig()
    reg = CollectorRegistry()
    requests = Counter("oxyrec_requests", "recommend requests by outcome", ["status"], registry=reg)
    latency = Histogram("oxyrec_request_seconds", "recommend latency (queue + decode)", registry=reg,
                        buckets=(.005, .01, .02, .03, .05, .075, .1, .15, .25, .5, 1, 2.5, 5))
    batch_size = Histogram("oxyrec_batch_size", "requests per decoded batch", registry=reg,
                           buckets=(1, 2, 4, 8, 16, 32, 64))
    decode_s = Histogram("oxyrec_batch_seconds", "decode time per batch", registry=reg)
    errors = Counter("oxyrec_errors", "errors by kind", ["kind"], registry=reg)
    depth = Gauge("oxyrec_queue_depth", "requests waiting to be decoded", registry=reg)
    instruction = Counter("oxyrec_instruction", "instruction source of served requests", ["source"], registry=reg)
    reloads = Counter("oxyrec_model_reloads", "champion versions loaded", registry=reg)

    def run_batch(reqs: list[RecRequest]):
        runtime = holder.runtime  # one runtime for the whole batch, even if a reload swaps it meanwhile
        before = runtime.counters["store_errors"]
        results = runtime.recommend(reqs)
        if runtime.counters["store_errors"] > before:
            errors.labels("store").inc(runtime.counters["store_errors"] - before)
        return results

    batcher = MicroBatcher(run_batch, cfg.max_batch, cfg.max_wait_ms / 1000, cfg.max_queue,
                           on_batch=lambda n, s: (batch_size.observe(n), decode_s.observe(s)))
    app = FastAPI(title="OxyRec", version="1")

    async def poll_registry():
        while True:
            await asyncio.sleep(cfg.poll_s)
            try:
                if holder.current_version and holder.current_version() != holder.source_version:
                    await asyncio.get_running_loop().run_in_executor(None, holder.reload)
                    reloads.inc()
            except Exception:  # noqa: BLE001 - the serving model stays; the failure is counted
                errors.labels("reload").inc()

    @app.on_event("startup")
    async def _start():
        batcher.start()
        if cfg.poll_s > 0 and holder.current_version:
            app.state.poller = asyncio.get_running_loop().create_task(poll_registry())

    @app.on_event("shutdown")
    async def _stop():
        await batcher.stop()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errs):
            errors.labels("bad_json").inc()
            return JSONResponse(status_code=400, content={"detail": "malformed JSON body"})
        errors.labels("invalid").inc()
        return JSONResponse(status_code=422, content={"detail": [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errs]})

    @app.middleware("http")
    async def _body_limit(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > cfg.max_body_bytes:
            errors.labels("too_large").inc()
            return JSONResponse(status_code=413, content={"detail": f"body over {cfg.max_body_bytes} bytes"})
        return await call_next(request)

    @app.post("/v1/recommend")
    async def recommend(body: RecommendBody):
        t0 = time.perf_counter()
        runtime = holder.runtime
        if runtime is None:
            return JSONResponse(status_code=503, content={"detail": "no model loaded"}, headers={"Retry-After": "1"})
        if body.beam > cfg.max_beam:
            return _invalid("beam", f"beam must be <= {cfg.max_beam}")
        if body.k > body.beam:
            return _invalid("k", "k must not exceed beam")
        if body.trigger_item is not None and body.trigger_item not in runtime.cat.row:
            return _invalid("trigger_item", f"unknown item {body.trigger_item!r}")
        if body.pool is not None and body.pool not in runtime.served.pools:
            return _invalid("pool", f"unknown pool {body.pool!r}; known: {sorted(runtime.served.pools)}")
        if body.pool is not None and body.pool_items is not None:
            return _invalid("pool_items", "give either pool or pool_items")
        if body.pool_items is not None and not any(i in runtime.cat.row for i in body.pool_items):
            return _invalid("pool_items", "no known item in the pool")
        depth.set(batcher.depth)
        try:
            result = await batcher.submit(RecRequest(**body.model_dump()))
        except Overloaded:
            requests.labels("503").inc()
            errors.labels("overloaded").inc()
            return JSONResponse(status_code=503, content={"detail": "queue full"}, headers={"Retry-After": "1"})
        requests.labels("200").inc()
        instruction.labels(result.instruction).inc()
        latency.observe(time.perf_counter() - t0)
        out = asdict(result)
        out["items"] = [{"item_id": i, "score": s, "sid": sid}
                        for i, s, sid in zip(out.pop("items"), out.pop("scores"), out.pop("sids"))]
        return out

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        if holder.runtime is None:
            return JSONResponse(status_code=503, content={"ready": False})
        return {"ready": True, "model_version": holder.runtime.version}

    @app.get("/metrics")
    async def metrics():
        depth.set(batcher.depth)
        return PlainTextResponse(generate_latest(reg).decode(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/model")
    async def model_info():
        rt = holder.runtime
        if rt is None:
            return JSONResponse(status_code=503, content={"detail": "no model loaded"})
        m = rt.served.manifest
        return {"model_version": rt.version, "sid_version": m["sid_version"], "sid_fingerprint": m["sid_fingerprint"],
                "items": len(rt.cat.item_ids), "pools": {k: len(v) for k, v in rt.served.pools.items()},
                "chosen": m.get("chosen"), "size": m.get("size"), "params": m.get("params")}

    @app.post("/v1/admin/reload")
    async def reload(request: Request):
        token = os.environ.get("OXY_RELOAD_TOKEN", "")
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token:
            return JSONResponse(status_code=404, content={"detail": "reload endpoint disabled (OXY_RELOAD_TOKEN)"})
        if not hmac.compare_digest(given, token):
            return JSONResponse(status_code=401, content={"detail": "bad token"})
        version = await asyncio.get_running_loop().run_in_executor(None, holder.reload)
        reloads.inc()
        return {"model_version": version}

    return app
