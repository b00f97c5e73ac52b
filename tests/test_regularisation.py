"""The generator's regularisation levers of #15: label smoothing on every code level's cross-entropy and
dropout on the encoder's input tokens, both off by default and off for configs saved before them."""

from dataclasses import asdict

import torch
import torch.nn.functional as F

from oxy_dagster.model.config import GeneratorConfig


def test_label_smoothing_mixes_the_uniform_target_into_every_level(tiny):
    codes = tiny.catalogue()
    model = tiny.model(codes, q2i_weight=0.0, label_smoothing=0.2).eval()
    batch = tiny.batch(len(codes), b=6)
    batch["weight"] = torch.tensor([1.0, 2.0, 1.0, 1.0, 3.0, 1.0])
    out = model(batch)
    h, target, _, _ = model.teacher_forced(batch)
    logits = [head(h[:, i]) for i, head in enumerate(model.heads)]
    per_row = 0.0
    for i, lg in enumerate(logits):  # by hand: (1 - eps) x NLL of the code + eps x mean NLL over the level
        logp = F.log_softmax(lg, -1)
        nll = -logp.gather(1, target[:, i:i + 1]).squeeze(1)
        per_row = per_row + 0.8 * nll + 0.2 * (-logp.mean(-1))
    w = batch["weight"]
    want = (per_row * w).sum() / (w.sum() * len(logits))
    assert torch.allclose(out["ntp"], want, atol=1e-5)
    model.cfg.label_smoothing = 0.0
    assert not torch.allclose(model(batch)["ntp"], want, atol=1e-3)  # the smoothing is what moved the loss


def test_input_dropout_acts_in_training_only(tiny):
    codes = tiny.catalogue()
    batch = tiny.batch(len(codes), b=6)
    model = tiny.model(codes, q2i_weight=0.0, dropout=0.0, emb_dropout=0.5)
    plain = tiny.model(codes, q2i_weight=0.0, dropout=0.0, emb_dropout=0.0)
    plain.load_state_dict(model.state_dict())
    model.eval(), plain.eval()
    assert torch.allclose(model(batch)["loss"], plain(batch)["loss"], atol=1e-6)  # evaluation: no dropout
    model.train(), plain.train()
    torch.manual_seed(0)
    a = model(batch)["loss"]
    torch.manual_seed(1)
    b = model(batch)["loss"]
    assert not torch.allclose(a, b)  # the input tokens are dropped at random
    torch.manual_seed(0)
    c = plain(batch)["loss"]
    torch.manual_seed(1)
    assert torch.allclose(c, plain(batch)["loss"])  # and nothing else is random with dropout 0


def test_configs_saved_before_the_levers_load_with_them_off(tiny):
    saved = asdict(tiny.model(tiny.catalogue(), emb_dropout=0.3, label_smoothing=0.1).cfg)
    assert GeneratorConfig.from_saved(saved).label_smoothing == 0.1
    for field in ("emb_dropout", "label_smoothing"):
        saved.pop(field)
    cfg = GeneratorConfig.from_saved(saved)
    assert cfg.emb_dropout == 0.0 and cfg.label_smoothing == 0.0
