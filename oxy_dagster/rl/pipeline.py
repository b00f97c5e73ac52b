"""Post-training end to end (the ``rl_checkpoint`` asset wraps it): pretrained policy + ranker -> RL -> export.

The policy starts from the pretrained checkpoint of the SID version; a frozen copy is the KL reference and
defines the relevance reward. The RL run keeps its resumable engine checkpoints under ``<dir>/train`` and
exports the trained generator to ``<dir>/checkpoints`` in the layout ``load_pretrained`` (and so the
offline evaluation and the deployed-model bundle) reads. Validation HR@10 of a fixed set of users is
recorded along the way, next to the rewards.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path

from ..io import save_figure, write_json
from ..model.evaluate import evaluate
from ..model.launch import is_lead_rank, launch
from ..model.pipeline import load_pretrained
from ..model.trie import DenseTrie
from ..paths import DataPaths
from ..ranking.pipeline import load_ranker
from ..rewards.service import RewardConfig, RewardService
from .policy import export_policy
from .trainer import RLConfig, train_rl


def post_train(paths: DataPaths, version: str, cfg: RLConfig | None = None, out_dir: Path | None = None,
               reward_cfg: RewardConfig | None = None, log=None, stop_at: int | None = None, eval_rows: int = 300,
               eval_every: int = 25, beam: int = 30, pretrained_dir: Path | None = None, echo=None) -> dict:
    """RL in this process, or over ``cfg.processes`` torchrun ranks (``echo(line)`` gets their other output)."""
    cfg = cfg or RLConfig()
    out_dir = Path(out_dir or paths.model(version, "rl"))
    if cfg.processes > 1:
        if cfg.engine != "deepspeed" or cfg.zero_stage == 3:
            raise ValueError(f"RL over {cfg.processes} processes needs engine='deepspeed' at ZeRO 0-2 (rank 0 "
                             "evaluates with whole weights)")
        spec = write_json(out_dir / "launch.json", {
            "root": str(paths.root), "version": version, "out": str(out_dir), "rl": asdict(cfg),
            "rewards": asdict(reward_cfg or RewardConfig()), "stop_at": stop_at, "eval_rows": eval_rows,
            "eval_every": eval_every, "beam": beam, "pretrained_dir": str(pretrained_dir) if pretrained_dir else None})
        launch("oxy_dagster.rl.cli", ["--spec", str(spec)], cfg.processes, on_line=echo, on_record=log)
        return json.loads((out_dir / "info.json").read_text())
    return post_train_here(paths, version, cfg, out_dir, reward_cfg, log, stop_at, eval_rows, eval_every, beam,
                           pretrained_dir)


def post_train_here(paths: DataPaths, version: str, cfg: RLConfig, out_dir: Path, reward_cfg: RewardConfig | None,
                    log=None, stop_at: int | None = None, eval_rows: int = 300, eval_every: int = 25, beam: int = 30,
                    pretrained_dir: Path | None = None) -> dict:
    """The body of ``post_train``: one process, or one rank of a launcher (rank 0 exports and writes the files)."""
    lead = is_lead_rank()
    policy, cat, data, trie = load_pretrained(paths, version, out_dir=pretrained_dir)
    reference = copy.deepcopy(policy)  # frozen: the KL reference and the relevance reward's adapter
    for p in reference.parameters():
        p.requires_grad_(False)
    ranker, meta = load_ranker(paths, version)
    service = RewardService(reference, ranker, meta, data.city_vocab, reward_cfg)
    rows = data.split_rows("train", cat.pad)

    def validation(model) -> dict:
        r = evaluate(model, data, trie, cat.codes, split="valid", beam=beam, max_rows=eval_rows, ks=(1, 10),
                     progress=False)
        return {"valid_hr@10": r["hr@10"], "valid_hr@1": r["hr@1"]}

    extra = {"sid_version": version, "sid_fingerprint": cat.fingerprint(), "ranker_fingerprint": meta["fingerprint"],
             "model": asdict(policy.cfg), "city_vocab": data.city_vocab}
    history = train_rl(policy, reference, service, DenseTrie.from_trie(trie), data, rows, cfg, out_dir / "train",
                       extra, log=log, stop_at=stop_at, evaluate=validation, eval_every=eval_every)
    done = history[-1]["step"] if history else 0
    info = {"steps": done, "objective": cfg.objective, "train_wall_s": round(history[-1]["wall_s"], 1) if history
            else 0.0, "final_reward": history[-1]["reward/total"] if history else None, **extra}
    if lead:
        if stop_at is None or done >= cfg.steps:
            export_policy(out_dir, policy, done, {**extra, "rl": asdict(cfg)})
        write_json(out_dir / "info.json", {k: v for k, v in info.items() if k != "model"})
        write_json(out_dir / "history.json", history)
    return info


def plot_rl(history: list[dict], path: Path) -> Path:
    """Mean reward of the sampled groups and validation HR@10 against the RL step, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["reward/total"] for h in history], label="mean reward (sampled groups)")
    ax.plot(steps, [h["reward/target"] for h in history], label="target item's reward", ls=":")
    ax.set(xlabel="RL step", ylabel="reward", title="post-training")
    ax.legend(loc="lower left")
    hr = [(h["step"], h["valid_hr@10"]) for h in history if "valid_hr@10" in h]
    if hr:
        twin = ax.twinx()
        twin.plot(*zip(*hr), color="black", marker="o", label="validation HR@10")
        twin.set_ylabel("validation HR@10")
        twin.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def load_history(out_dir: Path) -> list[dict]:
    return json.loads((Path(out_dir) / "history.json").read_text())
