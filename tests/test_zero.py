"""DeepSpeed ZeRO engine: one process with no launcher, kill + resume, pickle-free checkpoints; 2 processes."""

import json

import numpy as np
import pytest

from oxy_dagster.model.checkpoint import latest_checkpoint
from oxy_dagster.model.train import TrainConfig, train
from tests.test_generator import _catalogue, _model, _toy_data

pytest.importorskip("deepspeed")


def _no_pickles(folder):
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files and all(p.suffix in (".safetensors", ".json") or p.name == "latest" for p in files), files


@pytest.mark.parametrize("stage", [0, 2, 3])
def test_zero_single_process_resumes_to_the_same_step_and_loss(tmp_path, stage):
    codes = _catalogue()
    data = _toy_data(codes)
    rows = np.arange(len(data))
    cfg = TrainConfig(steps=8, batch_size=16, warmup=2, ckpt_every=100, log_every=1, lr=3e-3, engine="deepspeed",
                      zero_stage=stage)
    plain = train(_model(codes, dropout=0.1), data, rows, TrainConfig(**{**cfg.__dict__, "engine": "torch"}),
                  tmp_path / "torch")
    full = train(_model(codes, dropout=0.1), data, rows, cfg, tmp_path / "a")
    np.testing.assert_allclose([h["loss"] for h in full], [h["loss"] for h in plain], rtol=1e-4)  # same maths
    part = train(_model(codes, dropout=0.1), data, rows, cfg, tmp_path / "b", stop_at=5)
    assert len(part) == 5
    ckpt = latest_checkpoint(tmp_path / "b")
    state = json.loads((ckpt / "state.json").read_text())
    assert state["engine"] == "deepspeed" and state["zero_stage"] == stage and state["world_size"] == 1
    _no_pickles(tmp_path / "b")
    rest = train(_model(codes, dropout=0.1), data, rows, cfg, tmp_path / "b")
    assert [h["step"] for h in rest] == [6, 7, 8]
    np.testing.assert_allclose([h["loss"] for h in rest], [h["loss"] for h in full[5:]], rtol=1e-5)
