"""The Transformer kind (models/neural/transformer.py): each token sees exactly ``context`` tokens back per layer,
the carried state makes chunked, whole and token-by-token reading equal, and rotary positions make a window's
scores independent of where it sits in the stream."""

import pytest
import torch

from seqlm.config import ModelConfig
from seqlm.errors import SeqlmError
from seqlm.models.neural.transformer import TransformerLM, rotary


def model(**kw) -> TransformerLM:
    torch.manual_seed(0)
    cfg = ModelConfig(kind="transformer", embedding_dim=16, hidden_size=32, num_layers=kw.pop("layers", 2),
                      context=kw.pop("context", 4), heads=4, **kw)
    return TransformerLM(cfg, 50).eval()


def test_a_token_sees_context_tokens_back_in_each_layer():
    m = model(layers=1, context=4)
    x = torch.randint(0, 50, (1, 20))
    y = x.clone()
    y[0, 5] = (y[0, 5] + 1) % 50
    a, _ = m(x)
    b, _ = m(y)
    changed = (a - b).abs().amax(-1)[0] > 1e-6
    assert changed[5:10].all() and not changed[:5].any() and not changed[10:].any()  # positions 5 .. 5 + 4
    m2 = model(layers=2, context=4)
    a, _ = m2(x)
    b, _ = m2(y)
    changed = (a - b).abs().amax(-1)[0] > 1e-6
    assert changed[5:14].all() and not changed[14:].any()  # two layers: 2 x 4 back


def test_chunks_whole_and_steps_agree():
    m = model()
    x = torch.randint(0, 50, (3, 17))
    whole, _ = m(x)
    state, parts = None, []
    for s in (0, 5, 6, 13):
        e = {0: 5, 5: 6, 6: 13, 13: 17}[s]
        out, state = m(x[:, s:e], state)
        parts.append(out)
    assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-5)
    state, steps = None, []
    for t in range(17):
        out, state = m(x[:, t:t + 1], state)
        steps.append(out)
    assert torch.allclose(torch.cat(steps, 1), whole, atol=1e-5)


def test_rotary_scores_depend_on_distance_only():
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    scores = [(rotary(q, torch.tensor([p + 3])) * rotary(k, torch.tensor([p]))).sum().item() for p in (0, 7, 100)]
    assert scores == pytest.approx([scores[0]] * 3, abs=1e-4)


def test_options_that_do_not_apply_are_refused():
    from seqlm.training.train import make_config

    for option, match in (("model.heads=3", "multiple of model.heads"), ("model.fc_layers=1", "does not apply"),
                          ("model.init_range=0.2", "does not apply")):
        with pytest.raises(SeqlmError, match=match):
            make_config(None, [option, "model.embedding_dim=16"], model="transformer", train="x.txt").validate()
    with pytest.raises(SeqlmError, match="model.heads is for --model transformer"):
        make_config(None, ["model.heads=2"], model="lstm", train="x.txt").validate()
