"""The weight average (TrainConfig.ema_decay): its arithmetic, its checkpoints, resume, and what readers load."""

import numpy as np
import pytest
import torch

from oxy_dagster.model.averaging import AVERAGE_FILE, WeightAverage, load_average
from oxy_dagster.model.checkpoint import latest_checkpoint, load_checkpoint
from oxy_dagster.model.config import TrainConfig
from oxy_dagster.model.train import train


def test_the_average_follows_its_warmed_up_decay():
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    avg = WeightAverage(layer, decay=0.5)
    expected = 0.0
    for t, value in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            layer.weight.fill_(value)
        avg.update(layer)
        d = min(0.5, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * value
        assert torch.allclose(avg.shadow["weight"], torch.full((1, 2), expected))
    avg.copy_to(layer)
    assert torch.allclose(layer.weight, torch.full((1, 2), expected))
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage(layer, decay=1.0)


def _cfg(**kw):
    return TrainConfig(**{"steps": 12, "batch_size": 16, "warmup": 2, "ckpt_every": 100, "log_every": 1, "lr": 5e-3,
                          "engine": "torch", "ema_decay": 0.9, **kw})


def test_a_run_returns_and_checkpoints_its_average_and_readers_load_it(tiny, tmp_path):
    codes = tiny.catalogue()
    data = tiny.data(codes)
    model = tiny.model(codes, dropout=0.1)
    train(model, data, np.arange(len(data)), _cfg(), tmp_path / "run")
    ckpt = latest_checkpoint(tmp_path / "run")
    assert (ckpt / AVERAGE_FILE).exists()
    raw = tiny.model(codes)
    load_checkpoint(ckpt, raw)
    averaged = dict(model.named_parameters())
    # the returned model holds the average, which differs from the raw weights the run ended on
    assert any(not torch.allclose(p, averaged[n]) for n, p in raw.named_parameters())
    assert load_average(ckpt, raw)  # what pipeline.load_pretrained does after loading the raw weights
    for n, p in raw.named_parameters():
        assert torch.equal(p, averaged[n]), n
    plain = tiny.model(codes)
    train(plain, data, np.arange(len(data)), _cfg(steps=2, ema_decay=0.0), tmp_path / "plain")
    assert not load_average(latest_checkpoint(tmp_path / "plain"), plain)  # no average: raw weights stay


def test_a_killed_run_resumes_its_average_exactly(tiny, tmp_path):
    codes = tiny.catalogue()
    data = tiny.data(codes)
    rows = np.arange(len(data))
    full = tiny.model(codes, dropout=0.1)
    train(full, data, rows, _cfg(), tmp_path / "a")
    part = tiny.model(codes, dropout=0.1)
    train(part, data, rows, _cfg(), tmp_path / "b", stop_at=5)
    resumed = tiny.model(codes, dropout=0.1)  # a fresh process
    train(resumed, data, rows, _cfg(), tmp_path / "b")
    for (n, p), q in zip(full.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)


def test_an_average_from_another_model_is_refused(tiny, tmp_path):
    codes = tiny.catalogue()
    data = tiny.data(codes)
    train(tiny.model(codes), data, np.arange(len(data)), _cfg(steps=2), tmp_path / "run")
    other = tiny.model(codes, tie_heads=True)  # fewer weights: no separate output matrices
    with pytest.raises(ValueError, match=AVERAGE_FILE):
        load_average(latest_checkpoint(tmp_path / "run"), other)


def test_deepspeed_averages_like_the_plain_engine_and_refuses_zero3(tiny, tmp_path):
    pytest.importorskip("deepspeed")
    codes = tiny.catalogue()
    data = tiny.data(codes)
    rows = np.arange(len(data))
    plain = tiny.model(codes, dropout=0.1)
    train(plain, data, rows, _cfg(steps=6), tmp_path / "torch")
    zero = tiny.model(codes, dropout=0.1)
    train(zero, data, rows, _cfg(steps=6, engine="deepspeed", zero_stage=1), tmp_path / "zero1")
    assert (latest_checkpoint(tmp_path / "zero1") / AVERAGE_FILE).exists()
    for p, q in zip(plain.parameters(), zero.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=2e-4)  # same maths (Adam amplifies float noise where
        # a gradient is ~0, e.g. attention key biases), same average; steps move weights by ~lr = 5e-3
    with pytest.raises(ValueError, match="ZeRO-3"):
        train(tiny.model(codes), data, rows, _cfg(steps=2, engine="deepspeed", zero_stage=3), tmp_path / "zero3")
