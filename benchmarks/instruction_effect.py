"""What the stored slow-thinking instructions buy at serving time, on the synthetic shop (whose users have
hidden intents: three preferred leaf categories each).

1. The embedded default pipeline on the default shop (2,000 users): data, SID V3, a ``small`` generator.
2. The configured LLM (embedded SmolLM2-135M by default) writes a user-intent instruction for ``users``
   users (the daily path: 90-day + 24-hour narratives -> instruction -> MiniLM vector -> the store).
3. Their non-search test samples are served twice through the service's runtime, with the stored
   instruction and with the model's default instruction: Recall@10 of each.
4. ``instruction_accuracy``: the share of those users whose instruction names one of their hidden intent
   leaves (its name or one of its product nouns), beside the same share against another user's intents
   (what naming a popular category by chance gives).
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from oxy_dagster.data.pipeline import run_all
from oxy_dagster.data.sources import DatasetConfig
from oxy_dagster.data.synthetic import SyntheticConfig
from oxy_dagster.data.synthetic import vocab as V
from oxy_dagster.data.synthetic.generator import generate
from oxy_dagster.model.checkpoint import latest_checkpoint
from oxy_dagster.model.config import TrainConfig
from oxy_dagster.model.evaluate import ranking_metrics
from oxy_dagster.model.pipeline import build_pretrained
from oxy_dagster.paths import DataPaths, work_dir
from oxy_dagster.reasoning.intents import IntentConfig, refresh_user_instructions
from oxy_dagster.reasoning.llm import InstructionLLM, LLMConfig
from oxy_dagster.reasoning.server import LocalLLMServer
from oxy_dagster.reasoning.store import make_store
from oxy_dagster.serving.bundle import load_bundle
from oxy_dagster.serving.deploy import export, sample_requests
from oxy_dagster.serving.runtime import Runtime
from oxy_dagster.sid.build import build_codebook, build_item_embeddings, build_text_embeddings
from oxy_dagster.sid.text import shared_text_encoder
from oxy_dagster.spark import get_spark, stop_spark


def names_intent(text: str, leaves: list[str]) -> bool:
    text = text.lower()
    by_name = {lf.path[2]: lf for lf in V.LEAVES}
    return any(n.lower() in text for leaf in leaves for n in (leaf, *by_name[leaf].nouns))


def measure(users: int = 150, steps: int = 1000) -> dict:
    paths = DataPaths(work_dir() / "bench" / "synthetic-serving")
    cfg = SyntheticConfig()
    if not (paths.samples / "_schema.json").exists():
        run_all(get_spark(), DatasetConfig(kind="synthetic", synthetic=cfg), paths.root)
        stop_spark()
    if not (paths.sid / "V3" / "codes.parquet").exists():
        build_text_embeddings(paths)
        build_item_embeddings(paths, "V3")
        build_codebook(paths, "V3")
    model_dir = paths.model("V3")
    if latest_checkpoint(model_dir / "checkpoints") is None:
        build_pretrained(paths, "V3", "small", TrainConfig(steps=steps, engine="torch"))
    bundle = export(paths, "V3", [model_dir], paths.models / "bundle-bench", {"chosen": "pretrained"})
    store = make_store(f"sqlite:///{paths.root / 'instructions-bench.db'}")
    read = lambda t, cols: pq.read_table(paths.table(t), columns=cols).to_pandas()  # noqa: E731
    events = read("events", ["user_id", "item_id", "timestamp", "behavior", "query"])
    items = read("items", ["item_id", "title", "category_path"])
    people = read("users", ["user_id", "age_band", "gender", "city", "spending_tier"])
    with LocalLLMServer(n_threads=2, log_path=paths.root / "llama.log") as server:
        llm = InstructionLLM(LLMConfig(base_url=server.base_url, cache_path=str(paths.root / "llm-cache.sqlite"),
                                       timeout_s=180))
        stats = refresh_user_instructions(events, items, people, llm, store, shared_text_encoder(),
                                          IntentConfig(max_users=users, active_days=400))
    hidden = generate(cfg)["users"].set_index("user_id").h_intents.str.split("|")
    written = [u for u in hidden.index if store.get(u) is not None]
    texts = {u: store.get(u).instruction for u in written}
    rng = np.random.default_rng(0)
    others = rng.permutation(written)
    accuracy = float(np.mean([names_intent(texts[u], hidden[u]) for u in written]))
    chance = float(np.mean([names_intent(texts[u], hidden[o]) for u, o in zip(written, others) if u != o]))
    samples = pq.read_table(paths.samples, columns=["user_id", "split", "scenario", "target_item_id"]).to_pandas()
    rows = np.flatnonzero((samples.split == "test") & samples.user_id.isin(written) & (samples.scenario != "search"))
    served = load_bundle(bundle)
    runtime = Runtime(served, store=store, text_encoder=None)
    target = np.array([served.catalogue.row.get(t, -2) for t in samples.target_item_id.iloc[rows]])
    recall = {}
    for use in (True, False):
        got = runtime.recommend(sample_requests(paths, rows, k=10, beam=100, use_instruction=use))
        pred = np.array([[served.catalogue.row[i] for i in g.items] + [-1] * (10 - len(g.items)) for g in got])
        recall[use] = float(ranking_metrics(pred, target, (10,))["recall@10"].mean())
        if use:
            assert all(g.instruction == "stored" for g in got), "every served user has a stored instruction"
    store.close()
    return {"recall@10_with": round(recall[True], 4), "recall@10_default": round(recall[False], 4),
            "instruction_accuracy": round(accuracy, 3), "instruction_accuracy_chance": round(chance, 3),
            "users": len(written), "test_samples": int(len(rows)), "llm": "SmolLM2-135M-Instruct (embedded)",
            "llm_failed": stats["failed"], "generator": f"small, SID V3, {steps} steps",
            "note": "the generator trains with the learnable default instruction outside search; stored user "
                    "instructions are a serving-time input it never saw in training"}


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=2))
