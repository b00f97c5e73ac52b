"""Start the recommendation service: ``python -m oxy_dagster.serving`` (``scripts/serve.sh`` sets the environment).

The model comes from the MLflow registry (``oxyrec@champion`` at ``MLFLOW_TRACKING_URI``) unless
``--bundle`` names a local bundle folder. Instructions and user histories come from the store at
``OXY_INSTRUCTION_STORE`` (default: the embedded SQLite store the pipeline fills).
"""

from __future__ import annotations

import argparse
import os

import torch

from ..paths import default_mlflow_uri, work_dir
from .bundle import load_bundle
from .registry import ALIAS, MODEL_NAME, resolve_alias
from .runtime import Runtime
from .service import ModelHolder, ServiceConfig, create_app


def make_holder(bundle: str | None = None, store_url: str | None = None, tracking_uri: str | None = None,
                name: str = MODEL_NAME, alias: str = ALIAS, text_encoder=True, compile: bool = False) -> ModelHolder:
    """A holder that loads from ``bundle`` (fixed) or from the registry alias (and can follow it)."""
    from ..reasoning.store import make_store

    def encoder():
        if text_encoder is True:
            from ..sid.text import shared_text_encoder

            return shared_text_encoder()
        return text_encoder or None

    def open_store():
        url = store_url or os.environ.get("OXY_INSTRUCTION_STORE") or f"sqlite:///{work_dir() / 'instructions.db'}"
        try:
            return make_store(url)
        except Exception:  # noqa: BLE001 - a store that is down at start-up: serve the cold-start path
            return None

    def load():
        if bundle:
            served = load_bundle(bundle)
            return served.version, Runtime(served, open_store(), encoder(), compile)
        version, path = resolve_alias(work_dir() / "serving-cache", tracking_uri or default_mlflow_uri(), name, alias)
        served = load_bundle(path)
        served.manifest["model_version"] = version
        return version, Runtime(served, open_store(), encoder(), compile)

    def current():
        return resolve_alias_version(tracking_uri or default_mlflow_uri(), name, alias)

    return ModelHolder(load, None if bundle else current)


def resolve_alias_version(tracking_uri: str, name: str, alias: str) -> str:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    return str(MlflowClient().get_model_version_by_alias(name, alias).version)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--bundle", default=None, help="a local bundle folder instead of the registry")
    ap.add_argument("--store", default=None, help="sqlite:///PATH or redis://HOST:PORT/DB")
    ap.add_argument("--max-batch", type=int, default=ServiceConfig.max_batch)
    ap.add_argument("--max-wait-ms", type=float, default=ServiceConfig.max_wait_ms)
    ap.add_argument("--max-queue", type=int, default=ServiceConfig.max_queue)
    ap.add_argument("--poll-s", type=float, default=ServiceConfig.poll_s)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the decoder (minutes at start-up)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    holder = make_holder(args.bundle, args.store, compile=args.compile)
    holder.reload()
    app = create_app(holder, ServiceConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                                           max_queue=args.max_queue, poll_s=args.poll_s))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
