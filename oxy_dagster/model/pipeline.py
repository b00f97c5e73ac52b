"""Pre-training and offline evaluation end to end (the Dagster assets wrap these)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from safetensors.numpy import load_file

from ..io import save_figure, write_json
from ..paths import DataPaths
from ..sid.text import shared_text_encoder
from ..sid.versions import DEFAULT_VERSION
from .averaging import load_average
from .checkpoint import latest_checkpoint, load_checkpoint
from .config import EvalConfig, GeneratorConfig, ModelChoice, TrainConfig, preset
from .data import Catalogue, SampleTensors, build_tensors, load_catalogue, profile_vocab_sizes
from .evaluate import evaluate, history_repeat_rate
from .generator import Generator
from .launch import launch
from .train import train
from .trie import CodeTrie

SAMPLE_COLUMNS = ["user_id", "target_item_id", "target_behavior", "weight", "scenario", "trigger_item_id",
                  "instruction_source", "instruction_text", "short_item_ids", "short_behaviors", "long_item_ids",
                  "split", "age_band", "gender", "city", "spending_tier", "timestamp"]


def load_rewrites(paths: DataPaths) -> dict[str, str]:
    """Query rewrites written by slow thinking (``query_rewrites`` asset), if any."""
    path = paths.root / "reasoning" / "query_rewrites.parquet"
    if not path.exists():
        return {}
    df = pq.read_table(path, columns=["query", "rewrite"]).to_pandas()
    return dict(zip(df["query"], df["rewrite"]))


@dataclass(frozen=True)
class ModelInputs:
    """What every generator on one SID codebook shares: catalogue, sample tensors, the items' text vectors and
    the trie of the codebook's code tuples."""
    version: str
    max_short: int
    cat: Catalogue
    data: SampleTensors
    text: np.ndarray
    trie: CodeTrie


def prepare_inputs(paths: DataPaths, version: str, max_short: int, max_long: int = 64) -> ModelInputs:
    cat = load_catalogue(paths.sid / version / "codes.parquet", paths.table("items"))
    samples = pq.read_table(paths.samples, columns=SAMPLE_COLUMNS).to_pandas()
    data = build_tensors(samples, cat, max_short, max_long, shared_text_encoder(), rewrites=load_rewrites(paths))
    text = load_file(str(paths.sid / "encoded" / "embeddings.safetensors"))["text"]
    ids = pq.read_table(paths.sid / "encoded" / "item_ids.parquet").to_pandas().item_id.to_numpy().astype(str)
    if not np.array_equal(ids, cat.item_ids):
        raise ValueError("SID codebook and encoded items disagree on the catalogue; rematerialize the SID assets")
    return ModelInputs(version, max_short, cat, data, text, CodeTrie.build(cat.codes, tuple(cat.vocab())))


def inputs_for(paths: DataPaths, version: str, max_short: int, inputs: ModelInputs | None = None) -> ModelInputs:
    """``inputs`` where they were built for this codebook and history length, else freshly prepared ones."""
    if inputs is not None and (inputs.version, inputs.max_short) == (version, max_short):
        return inputs
    return prepare_inputs(paths, version, max_short)


def prepare(paths: DataPaths, version: str, cfg: GeneratorConfig, inputs: ModelInputs | None = None):
    """Catalogue, sample tensors, model and trie for a SID version (``inputs`` reused where they fit ``cfg``)."""
    inputs = inputs_for(paths, version, cfg.max_short, inputs)
    cat, data = inputs.cat, inputs.data
    cfg = replace(cfg, code_vocab=tuple(cat.vocab()), n_cate=int(cat.cate.max()) + 1,
                  n_brand=int(cat.brand.max()) + 1, profile_vocab=profile_vocab_sizes(data.city_vocab),
                  text_dim=data.tensors["reasoning"].shape[1])
    model = Generator(cfg, torch.from_numpy(cat.codes), torch.from_numpy(cat.cate), torch.from_numpy(cat.brand),
                      torch.from_numpy(inputs.text))
    return cat, data, model, inputs.trie


def build_pretrained(paths: DataPaths, version: str = DEFAULT_VERSION, size: str = ModelChoice.size,
                     train_cfg: TrainConfig | None = None, log=None, out_dir: Path | None = None, echo=None,
                     **model_overrides) -> dict:
    """Train (or resume) in this process, or over ``train_cfg.processes`` ranks; returns ``info.json``'s dict.

    ``log(record)`` receives the logged steps; ``echo(line)`` the ranks' other output (multi-process only)."""
    train_cfg = train_cfg or TrainConfig()
    if train_cfg.processes > 1:
        return pretrain_in_processes(paths, version, size, train_cfg, log, out_dir, echo, **model_overrides)
    return pretrain(paths, version, size, train_cfg, log, out_dir, **model_overrides)[0]


def pretrain_in_processes(paths: DataPaths, version: str, size: str, train_cfg: TrainConfig, log=None,
                          out_dir: Path | None = None, echo=None, **model_overrides) -> dict:
    """``train_cfg.processes`` ranks under torchrun (``cli --spec``), their progress streamed to ``log``/``echo``."""
    if train_cfg.engine != "deepspeed":
        raise ValueError(f"processes={train_cfg.processes} needs engine='deepspeed', not {train_cfg.engine!r}")
    out_dir = Path(out_dir or paths.model(version))
    spec = write_json(out_dir / "launch.json", {"root": str(paths.root), "version": version, "size": size,
                                                 "out": str(out_dir), "train": asdict(train_cfg),
                                                 "model": model_overrides})
    launch("oxy_dagster.model.cli", ["--spec", str(spec)], train_cfg.processes, on_line=echo, on_record=log)
    return json.loads((out_dir / "info.json").read_text())


def pretrain(paths: DataPaths, version: str = DEFAULT_VERSION, size: str = ModelChoice.size,
             train_cfg: TrainConfig | None = None, log=None, out_dir: Path | None = None, write_info: bool = True,
             stop_at: int | None = None, **model_overrides):
    """Train (or resume) and return (info, trained model, catalogue, sample tensors, trie), ready to evaluate."""
    train_cfg = train_cfg or TrainConfig()
    cat, data, model, trie = prepare(paths, version, preset(size, **model_overrides))
    rows = data.split_rows("train", cat.pad)
    out_dir = out_dir or paths.model(version)
    extra = {"sid_version": version, "sid_fingerprint": cat.fingerprint(), "model": asdict(model.cfg),
             "size": size, "city_vocab": data.city_vocab}
    history = train(model, data, rows, train_cfg, out_dir / "checkpoints", extra, log=log, stop_at=stop_at)
    final = float(np.mean([h["loss"] for h in history[-20:]])) if history else None
    info = {"train_samples": int(len(rows)), "params": int(sum(p.numel() for p in model.parameters())),
            "steps": history[-1]["step"] if history else train_cfg.steps, "final_loss": final,
            "unknown_items": data.unknown_items, **extra}
    if write_info:  # rank 0 only under a launcher
        write_json(out_dir / "info.json", info)
        write_json(out_dir / "history.json", history)
    return info, model, cat, data, trie


def plot_history(history: list[dict], path: Path) -> Path:
    """Training curves (loss, NTP, Q2I; learning rate on a twin axis) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [h["step"] for h in history]
    for key in ("loss", "ntp", "q2i"):
        if history and key in history[0]:
            ax.plot(steps, [h[key] for h in history], label=key)
    ax.set(xlabel="step", ylabel="loss", title="generator pre-training")
    ax.legend(loc="upper right")
    lr = ax.twinx()
    lr.plot(steps, [h["lr"] for h in history], color="grey", lw=0.8, ls="--")
    lr.set_ylabel("learning rate")
    fig.tight_layout()
    return save_figure(fig, path)


def load_pretrained(paths: DataPaths, version: str, out_dir: Path | None = None):
    """Model + data + trie from the latest checkpoint; refuses a checkpoint of another SID codebook."""
    model, inputs = _load_checkpointed(paths, out_dir or paths.model(version))
    return model, inputs.cat, inputs.data, inputs.trie


def load_pretrained_many(paths: DataPaths, version: str, out_dirs: list):
    """(models, catalogue, data, trie) of several checkpoints, the catalogue, sample tensors and trie built once
    for all that share a codebook and history length; the data and trie returned are the first model's."""
    loaded, inputs = [], None
    for out_dir in out_dirs or [paths.model(version)]:
        model, inputs = _load_checkpointed(paths, Path(out_dir), inputs)
        loaded.append((model, inputs))
    first = loaded[0][1]
    return [m for m, _ in loaded], first.cat, first.data, first.trie


def _load_checkpointed(paths: DataPaths, out_dir: Path, inputs: ModelInputs | None = None):
    ckpt = latest_checkpoint(out_dir / "checkpoints")
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint under {out_dir}/checkpoints: materialize pretrained_checkpoint")
    state = json.loads((ckpt / "state.json").read_text())
    cfg = GeneratorConfig.from_saved(state["model"])
    inputs = inputs_for(paths, state["sid_version"], cfg.max_short, inputs)
    cat, _, model, _ = prepare(paths, state["sid_version"], cfg, inputs=inputs)
    if state["sid_fingerprint"] != cat.fingerprint():
        raise ValueError(f"checkpoint {ckpt} belongs to SID {state['sid_version']} codes "
                         f"{state['sid_fingerprint']}, not the current {cat.fingerprint()}")
    load_checkpoint(ckpt, model)
    load_average(ckpt, model)  # a run with ema_decay > 0 is read as its averaged weights
    return model.eval(), inputs


def offline_eval(paths: DataPaths, version: str, cfg: EvalConfig | None = None, out_dir: Path | None = None) -> dict:
    """Evaluation metrics plus the training split's history repeat rate (what ``exclude_history`` can cost) of
    the generator in ``out_dir`` (default: the pretrained one of ``version``)."""
    cfg = cfg or EvalConfig()
    model, cat, data, trie = load_pretrained(paths, version, out_dir)
    result = evaluate(model, data, trie, cat.codes, split=cfg.split, beam=cfg.beam, max_rows=cfg.max_rows or None,
                      exclude_history=cfg.exclude_history, ks=(1, 5, 10, 20))  # HR@1 for the RL comparison
    return {**result, "history_repeat_rate": history_repeat_rate(data)}
