"""The adaptive softmax (neural/output.py): an exact distribution, the targets-only path equal to the full
one in value and gradient, tying, bad cut points."""

import pytest
import torch

from seqlm.config import ModelConfig, RunConfig, apply
from seqlm.errors import SeqlmError
from seqlm.models.neural.output import AdaptiveOutput
from seqlm.models.neural.recurrent import RecurrentLM
from seqlm.text.vocab import BOS_ID


@pytest.mark.parametrize("cutoffs", [[10], [10, 30], [5, 20, 45]])
def test_adaptive_softmax_is_a_distribution(cutoffs):
    torch.manual_seed(0)
    out = AdaptiveOutput(8, 50, cutoffs).double()
    h = torch.randn(3, 4, 8, dtype=torch.float64)
    logp = out(h)
    assert logp.shape == (3, 4, 50)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3, 4, dtype=torch.float64))
    assert torch.all(logp[..., BOS_ID] == -torch.inf)  # <s> is never predicted


def test_targets_only_equals_the_full_distribution_in_value_and_gradient():
    torch.manual_seed(1)
    a = AdaptiveOutput(8, 60, [12, 35]).double()
    b = AdaptiveOutput(8, 60, [12, 35]).double()
    b.load_state_dict(a.state_dict())
    h = torch.randn(40, 8, dtype=torch.float64)
    y = torch.randint(2, 60, (40,))
    y[:3] = torch.tensor([2, 12, 59])  # the edges of the clusters
    fast = a.target_log_probs(h, y)
    full = b(h).gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(fast, full)
    fast.sum().backward()
    full.sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=name)


def test_tied_adaptive_model_shares_the_embedding():
    cfg = ModelConfig(kind="lstm", embedding_dim=8, hidden_size=8, num_layers=1, tie_weights=True,
                      adaptive_cutoffs=[10, 30])
    m = RecurrentLM(cfg, 50)
    assert m.decoder.weight is m.embedding.weight
    x = torch.randint(0, 50, (2, 5))
    logp, _ = m(x)
    lp, _ = m(x, targets=x)
    torch.testing.assert_close(lp, logp.gather(2, x[..., None])[..., 0])


@pytest.mark.parametrize("cutoffs,match", [([30, 10], "increase strictly"), ([1], "increase strictly"),
                                           ([10, 10], "increase strictly")])
def test_bad_cutoffs_in_the_config(cutoffs, match):
    cfg = RunConfig()
    apply(cfg, "model", "kind", "lstm")
    apply(cfg, "model", "adaptive_cutoffs", cutoffs)
    with pytest.raises(SeqlmError, match=match):
        cfg.validate()


def test_cutoffs_past_the_vocabulary():
    with pytest.raises(SeqlmError, match="below the vocabulary size"):
        RecurrentLM(ModelConfig(kind="lstm", embedding_dim=8, hidden_size=8, adaptive_cutoffs=[10, 60]), 50)
