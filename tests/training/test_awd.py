"""AWD-LSTM's training-time ideas (Merity et al. 2018), each shown doing what the paper says at small scale:
activation regularisation (AR/TAR), variable-length BPTT with the lr scaled by length, and weight averaging
(NT-ASGD's trigger; the averaged weights are the average of the iterates)."""

import json

import numpy as np
import pytest
import torch

from conftest import tiny_run
from seqlm.config import ModelConfig, TrainConfig
from seqlm.models.loader import load
from seqlm.models.neural.recurrent import RecurrentLM
from seqlm.training.schedule import nonmonotone, window_length
from seqlm.training.step import Averager, Stepper, make_optimizer


def _model(**kw):
    torch.manual_seed(0)
    return RecurrentLM(ModelConfig(kind="lstm", embedding_dim=8, hidden_size=8, num_layers=2, dropout=0.3, **kw), 30)


def test_penalty_is_ar_plus_tar():
    m = _model()
    m.train()
    t = TrainConfig(optimizer="sgd", lr=0.1)
    s = Stepper(m, make_optimizer(t, m.parameters()), m.init_state(3), None, clip=0.0, ar=2.0, tar=1.0)
    m(torch.randint(2, 30, (3, 7)), None)
    raw, dropped = m.activations
    assert raw.shape == dropped.shape == (3, 7, 8) and not torch.equal(raw, dropped)  # dropout between them
    want = 2.0 * dropped.pow(2).mean() + 1.0 * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
    assert s._penalty().item() == pytest.approx(want.item(), rel=1e-6)


def _activation_stats(tar: float, ar: float):
    m = _model()
    t = TrainConfig(optimizer="adam", lr=0.01)
    s = Stepper(m, make_optimizer(t, m.parameters()), m.init_state(4), None, clip=1.0, ar=ar, tar=tar)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(2, 30, (4, 12), generator=g)
    y = torch.randint(2, 30, (4, 12), generator=g)
    m.train()
    for _ in range(60):
        s.step(x, y)
    m.eval()
    m.record_activations, m.training = True, True  # read the activations without dropout
    m.drop.p = m.embedding_drop.p = 0.0
    m(x, None)
    raw = m.activations[0]
    return raw.pow(2).mean().item(), (raw[:, 1:] - raw[:, :-1]).pow(2).mean().item()


def test_ar_shrinks_activations_and_tar_smooths_them():
    base_size, base_change = _activation_stats(0.0, 0.0)
    ar_size, _ = _activation_stats(0.0, 50.0)
    _, tar_change = _activation_stats(500.0, 0.0)
    assert ar_size < 0.5 * base_size
    assert tar_change < 0.5 * base_change


def test_variable_bptt_lengths():
    t = TrainConfig(bptt=70, variable_bptt=True, seed=3)
    lengths = np.array([window_length(t, k) for k in range(4000)])
    assert lengths.min() >= 5 and lengths.max() <= 90
    assert abs(lengths.mean() - (0.95 * 70 + 0.05 * 35)) < 1.0  # AWD's mixture of N(70, 5) and N(35, 5)
    assert ((lengths > 20) & (lengths < 50)).mean() == pytest.approx(0.05, abs=0.015)
    assert [window_length(t, k) for k in range(50)] == list(lengths[:50])  # the same draw at every call
    assert window_length(TrainConfig(bptt=35), 7) == 35


def test_variable_bptt_reads_every_token_once_and_scales_the_lr(tmp_path, small_files, monkeypatch):  # noqa: F811
    seen = []
    real = Stepper.step

    def spy(self, x, y, check=False):
        seen.append((x.shape[1], self.optimizer.param_groups[0]["lr"]))
        return real(self, x, y, check)

    monkeypatch.setattr(Stepper, "step", spy)
    _, summary = tiny_run(tmp_path, small_files, extra=["train.epochs=1", "train.variable_bptt=true",
                                                          "train.optimizer=sgd", "train.lr=0.5", "train.bptt=12"])
    lengths = [n for n, _ in seen]
    width = sum(lengths)
    rows = 4
    tokens = summary["epochs"][0]["tokens"]
    assert tokens == width * rows  # every column of the stream once
    assert len(set(lengths[:-1])) > 3  # the lengths vary
    for n, lr in seen:
        assert lr == pytest.approx(0.5 * n / 12)


def test_nonmonotone_trigger():
    assert not nonmonotone([5, 4, 3], 2.5, 2)
    assert not nonmonotone([5, 4], 6, 2)  # too few validations yet
    assert nonmonotone([5, 4, 3, 3.5, 3.6], 4.5, 2)  # worse than min(5, 4, 3)
    assert not nonmonotone([5, 4, 3, 3.5, 3.6], 2.9, 2)


def test_averager_is_the_average():
    m = _model()
    a = Averager(m)
    a.start()
    seen = []
    for k in range(5):
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p))
        seen.append([p.detach().clone() for p in m.parameters()])
        a.update()
    for j, avg in enumerate(a.avg):
        assert torch.allclose(avg, torch.stack([s[j] for s in seen]).mean(0), atol=1e-6)
    before = [p.detach().clone() for p in m.parameters()]
    means = [avg.clone() for avg in a.avg]
    a.swap()  # the model holds the average, the averager the iterate
    assert all(torch.equal(p, mean) for p, mean in zip(m.parameters(), means))
    a.swap()
    assert all(torch.equal(p, b) for p, b in zip(m.parameters(), before))


AVG = ["train.epochs=1", "train.optimizer=sgd", "train.lr=0.5", "model.tie_weights=true"]


def test_kept_model_is_the_average_of_the_iterates(tmp_path, small_files):  # noqa: F811
    iterates = []
    for k in range(1, 5):
        tiny_run(tmp_path, small_files, f"it{k}", extra=AVG + [f"train.max_steps={k}"])
        iterates.append(load(tmp_path / f"it{k}" / "last" / "model").module.state_dict())
    tiny_run(tmp_path, small_files, "avg", extra=AVG + ["train.max_steps=4", "train.average=tail",
                                                          "train.average_start=0"])
    kept = load(tmp_path / "avg" / "model").module.state_dict()
    last = load(tmp_path / "avg" / "last" / "model").module.state_dict()
    for name in kept:
        mean = torch.stack([it[name] for it in iterates]).mean(0)
        assert torch.allclose(kept[name], mean, atol=1e-6), name
        assert torch.equal(last[name], iterates[-1][name]), name  # training goes on from the iterate
    summary = json.loads((tmp_path / "avg" / "summary.json").read_text())
    assert summary["average_from_step"] == 0


def test_resume_with_averaging_is_exact(tmp_path, small_files):  # noqa: F811
    common = AVG + ["train.checkpoint_every=5", "train.average=tail", "train.average_start=0.1",
                    "train.variable_bptt=true", "train.ar=1", "train.tar=1", "model.dropout=0.2", "train.epochs=3"]
    tiny_run(tmp_path, small_files, "a", extra=common + ["train.max_steps=40"])
    tiny_run(tmp_path, small_files, "b", extra=common + ["train.max_steps=20"])
    tiny_run(tmp_path, small_files, "b", extra=common + ["train.max_steps=40"], resume=True)
    for folder in ("last/model", "model"):
        a = load(tmp_path / "a" / folder).module.state_dict()
        b = load(tmp_path / "b" / folder).module.state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), (folder, k)


def test_awd_recipe_trains_at_tiny_scale(tmp_path, small_files):  # noqa: F811
    """The AWD-LSTM recipe as written (every idea on), shrunk to toy size, trains on CPU and resumes."""
    from seqlm.training.train import train

    shrink = ["model.embedding_dim=16", "model.hidden_size=24", "model.last_layer_size=16", "train.batch_size=4",
              "train.bptt=10", "train.max_minutes=none", "train.epochs=1",
              "train.average_start=0.3", "train.threads=1", "train.device=cpu", "train.lr=5"]
    files = {k: small_files[k] for k in ("train", "valid", "test")}
    lm, summary = train("recipes/ptb/awd-lstm.toml", out=tmp_path / "awd", overrides=shrink, corpus=None, **files)
    assert summary["average_from_step"] > 0.25 * summary["steps"]
    assert summary["metrics"]["test_perplexity"] < len(lm.vocab) / 2  # learned something in one epoch


def test_mogrifier_zero_rounds_is_the_lstm_and_rounds_gate():
    from seqlm.models.neural.cells import MogrifierLSTM, ReferenceRecurrent

    torch.manual_seed(0)
    mog = MogrifierLSTM(6, 5, rounds=0)
    ref = ReferenceRecurrent("lstm", 6, 5, 1)
    ref.load_state_dict(mog.state_dict())
    x = torch.randn(3, 7, 6)
    assert torch.allclose(mog(x)[0], ref(x)[0], atol=1e-6)
    # one step with 3 rounds, written out: x <- 2σ(Q1 h) x; h <- 2σ(R2 x) h; x <- 2σ(Q3 h) x
    mog3 = MogrifierLSTM(6, 5, rounds=3)
    h0, c0 = torch.randn(1, 3, 5), torch.randn(1, 3, 5)
    xt, h = x[:, 0], h0[0]
    xt = 2 * torch.sigmoid(h @ mog3.mog_q1.t()) * xt
    h = 2 * torch.sigmoid(xt @ mog3.mog_r2.t()) * h
    xt = 2 * torch.sigmoid(h @ mog3.mog_q3.t()) * xt
    ref.load_state_dict({k: v for k, v in mog3.state_dict().items() if not k.startswith("mog")})
    want, _ = ref(xt[:, None], (h[None], c0))
    got, _ = mog3(x[:, :1], (h0, c0))
    assert torch.allclose(got, want, atol=1e-6)


def test_mogrifier_kind_trains_and_refuses_fused(tmp_path, small_files):  # noqa: F811
    from seqlm.errors import SeqlmError

    lm, summary = tiny_run(tmp_path, small_files, kind="mogrifier", extra=["train.max_steps=5",
                                                                          "model.mogrifier_rounds=4"])
    assert summary["config"]["model"]["backend"] == "reference"
    assert sum(1 for n, _ in lm.module.named_parameters() if "mog_" in n) == 2 * 4
    with pytest.raises(SeqlmError, match="no 'fused' backend"):
        tiny_run(tmp_path, small_files, "f", kind="mogrifier", extra=["model.backend=fused"])
    with pytest.raises(SeqlmError, match="does not apply to lstm"):
        tiny_run(tmp_path, small_files, "g", extra=["model.mogrifier_rounds=3"])


def test_nce_loss_formula():
    from seqlm.models.neural.output import NCELoss

    torch.manual_seed(0)
    counts = torch.tensor([5, 0, 3, 7, 1, 4])
    nce = NCELoss(counts, samples=4)
    assert nce.noise[1] == 0 and nce.noise.sum().item() == pytest.approx(1.0)
    h, w, b = torch.randn(3, 2), torch.randn(6, 2), torch.randn(6)
    y = torch.tensor([0, 3, 5])
    torch.manual_seed(5)
    got = nce(h, y, w, b)
    torch.manual_seed(5)
    noise = torch.multinomial(nce.noise, 4, replacement=True)
    assert 1 not in noise.tolist()
    delta_t = (h * w[y]).sum(-1) + b[y] - torch.log(4 * nce.noise[y])
    delta_n = h @ w[noise].t() + b[noise] - torch.log(4 * nce.noise[noise])
    want = (-torch.nn.functional.logsigmoid(delta_t) - torch.log1p(-torch.sigmoid(delta_n)).sum(-1)).mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_nce_trains_a_nearly_self_normalised_softmax(tmp_path, small_files):  # noqa: F811
    """Trained by NCE (never normalising), the model's softmax normaliser comes out near 1 (Mnih & Teh's
    observation) and its exact perplexity near the cross-entropy model's."""
    extra = ["train.epochs=3", "train.optimizer=adam", "train.lr=0.01"]
    ce, ce_summary = tiny_run(tmp_path, small_files, "ce", extra=extra)
    nce, summary = tiny_run(tmp_path, small_files, "nce", extra=extra + ["train.loss=nce", "train.nce_samples=20"])
    assert summary["epochs"][0]["train_loss_is"] == "nce"
    assert summary["metrics"]["test_perplexity"] < 1.3 * ce_summary["metrics"]["test_perplexity"]
    lines = small_files["test"].read_text().splitlines()[:20]
    ids = torch.tensor(np.concatenate([nce.vocab.encode(nce.vocab.tokenizer.tokenize(x)) for x in lines]))[None]
    with torch.no_grad():
        nce.module.eval()
        logits, _ = nce.module(ids)
        log_z = torch.logsumexp(logits[0, :, 2:], dim=-1)  # over the predictable words
    assert log_z.abs().mean().item() < 0.5
