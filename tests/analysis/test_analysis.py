"""Embedding neighbours and the report folder."""

import json

import numpy as np
import pytest

import seqlm
from seqlm.cli import main
from seqlm.errors import SeqlmError


def test_neighbours_are_the_cosine_nearest(lstm):  # noqa: F811
    lm, _ = lstm
    word = next(w for w in lm.vocab.itos[3:] if w.isalpha())
    near = seqlm.neighbours(lm, word, k=5)
    emb = lm.module.embedding.weight.detach().numpy().astype(np.float64)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = unit @ unit[lm.vocab.stoi[word]]
    expected = [lm.vocab.itos[j] for j in np.argsort(-sims) if j >= 3 and lm.vocab.itos[j] != word][:5]
    assert [n["token"] for n in near] == expected
    assert all(a["cosine"] >= b["cosine"] for a, b in zip(near, near[1:]))
    with pytest.raises(SeqlmError, match="not in the model's vocabulary"):
        seqlm.neighbours(lm, "qqqzzz")


def test_neighbours_of_an_ngram_model_is_an_error(toy_files):
    lm, _ = seqlm.train(model="kn", order=2, train=toy_files["train"])
    with pytest.raises(SeqlmError, match="has no embedding"):
        seqlm.neighbours(lm, "the")


def test_neighbours_cli(lstm, capsys):  # noqa: F811
    _, summary = lstm
    assert main(["neighbours", summary["out"], "the", "a", "--top-k", "3", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["word"] for r in rows] == ["the", "a"] and all(len(r["neighbours"]) == 3 for r in rows)


def test_report_folder(lstm, tmp_path):  # noqa: F811
    _, summary = lstm
    results = tmp_path / "results"
    results.mkdir()
    (results / "tiny.json").write_text(json.dumps({**summary, "recipe": "tiny"}))
    path = seqlm.report([results, summary["out"]], tmp_path / "rep", words=("the", "a"))
    text = path.read_text()
    assert "| tiny |" in text and "Nearest neighbours" in text and "| the |" in text
    assert (tmp_path / "rep" / "curves-cpu.png").stat().st_size > 1000
    with pytest.raises(SeqlmError, match="no such folder"):
        seqlm.report([tmp_path / "nope"], tmp_path / "rep2")


def test_report_from_results_alone(lstm, tmp_path):  # noqa: F811
    """A training run records its embedding neighbours in its results, so a report needs no run folder."""
    from seqlm.models.neural.embeddings import REPORT_WORDS, neighbour_table

    lm, summary = lstm
    assert summary["neighbours"] == neighbour_table(lm)  # recorded for the words of REPORT_WORDS it knows
    results = tmp_path / "results"
    results.mkdir()
    recorded = {**summary, "recipe": "tiny", "neighbours": neighbour_table(lm, ("the", "a"))}
    (results / "tiny.json").write_text(json.dumps(recorded))
    text = seqlm.report([results], tmp_path / "rep").read_text()
    near = recorded["neighbours"]["the"][0]
    assert "tiny (from its results file)" in text and f"{near['token']} ({near['cosine']:.2f})" in text
    assert set(REPORT_WORDS) >= set(summary["neighbours"])


@pytest.mark.parametrize("kind", ["lstm", "rnn_tanh", "transformer"])
def test_gradient_diagnostic(tmp_path, small_files, kind, capsys):  # noqa: F811
    """Norms for k = 0..K, one curve for the input and one per state; at k = 0 the gradient exists; far back
    it is smaller; a Transformer has the input curve only, exactly 0 beyond its reach (layers x context); the
    JSON and figure are written."""
    from conftest import tiny_run
    from seqlm.analysis.gradients import diagnose_gradients

    extra = ["train.max_steps=20"] + (["model.context=8", "model.num_layers=2", "model.heads=2"]
                                      if kind == "transformer" else [])
    lm, summary = tiny_run(tmp_path, small_files, kind=kind, extra=extra)
    lines = small_files["valid"].read_text().splitlines()
    r = diagnose_gradients(lm, lines, K=30, positions=40)
    names = r["states"]
    assert names == {"lstm": ["input", "layer1.h", "layer1.c", "layer2.h", "layer2.c"],
                     "rnn_tanh": ["input", "layer1.h", "layer2.h"], "transformer": ["input"]}[kind]
    for which in ("trained", "init"):
        for name in names:
            curve = r[which][name]
            assert len(curve["median"]) == 31 and curve["median"][curve["from_k"]] > 0
            assert curve["from_k"] == (1 if name.endswith(".c") else 0)
    if kind == "transformer":  # two layers of context 8: the input 16 tokens back is the farthest that counts
        reach = r["trained"]["input"]
        assert reach["q3"][16] > 0 and max(reach["q3"][17:]) == 0 and reach["horizon"] <= 17
    else:  # the top layer's h at k = 0 carries the whole gradient of the prediction; far back it is smaller
        top = r["trained"][names[-2] if kind == "lstm" else names[-1]]["median"]
        assert top[-1] < top[0]
        assert r["trained"]["input"]["median"][-1] < r["trained"]["input"]["median"][0]
    out, fig = tmp_path / "g.json", tmp_path / "g.png"
    assert main(["diagnose", "gradients", summary["out"], "--file", str(small_files["valid"]), "--K", "20",
                 "--positions", "30", "--out", str(out), "--plot", str(fig)]) == 0
    assert json.loads(out.read_text())["K"] == 20 and fig.stat().st_size > 1000
    assert "gradient horizon" in capsys.readouterr().out


def test_the_input_gradient_is_the_same_read_in_steps_or_whole(tmp_path, small_files):  # noqa: F811
    """For a recurrent model the input curve, measured step by step, equals the one a single forward pass over
    the window gives (the Transformer's way): the two paths measure one quantity."""
    from conftest import tiny_run
    from seqlm.analysis import gradients

    lm, _ = tiny_run(tmp_path, small_files, kind="lstm", extra=["train.max_steps=5"])
    stream = np.arange(200, dtype=np.int64) % (len(lm.vocab) - 3) + 3
    pos = np.array([120, 150, 170])
    steps = gradients.gradient_norms(lm.module, stream, pos, 20)[:, :, 0]
    np.testing.assert_allclose(steps, whole_window_norms(lm.module, stream, pos, 20), rtol=1e-4, atol=1e-9)


def whole_window_norms(module, stream, positions, K):
    """The input curve from one forward pass over each window, differentiated with respect to the window's
    embeddings as one leaf tensor (the module's own ``embed`` answers with it)."""
    import torch

    module.eval()
    starts = positions - K
    with torch.no_grad():
        prefix = int(min(starts.min(), gradients_warmup()))
        tokens = torch.from_numpy(np.stack([stream[s - prefix:s] for s in starts]))
        _, state = module(tokens, module.init_state(len(positions)))
    window = torch.from_numpy(np.stack([stream[s:s + K + 1] for s in starts]))
    x = module.embed(window).detach().requires_grad_(True)
    module.embed = lambda tokens: x
    try:
        logits, _ = module(window, module.detach_state(state))
    finally:
        del module.embed
    target = torch.from_numpy(stream[positions + 1])
    torch.log_softmax(logits[:, -1].float(), dim=-1).gather(1, target[:, None]).sum().backward()
    return x.grad.norm(dim=-1).flip(1).double().numpy()


def gradients_warmup():
    from seqlm.analysis.gradients import WARMUP

    return WARMUP


def test_gradient_diagnostic_needs_a_recurrent_model_or_a_transformer(toy_files, tmp_path, small_files):  # noqa: F811
    from conftest import tiny_run
    from seqlm.analysis.gradients import diagnose_gradients

    lm, _ = seqlm.train(model="kn", order=2, train=toy_files["train"])
    with pytest.raises(SeqlmError, match="recurrent model .* or a transformer: a n-gram"):
        diagnose_gradients(lm, ["a b"])
    window, _ = tiny_run(tmp_path, small_files, kind="window", extra=["train.max_steps=2"])
    with pytest.raises(SeqlmError, match="a window model sees a fixed window"):
        diagnose_gradients(window, ["a b"])


def test_recall_probe_reach():
    """The 5-gram and the 4-word window recall the key while it is within their reach (d + 2 <= 4) and are
    at chance beyond it; an LSTM learns the recall at d = 1 in a few hundred updates."""
    from seqlm.analysis import probe

    r = probe.run_probe(distances=(1, 5), families=("kn5", "window"), steps=300, threads=1)
    acc = r["accuracy"]
    assert acc["kn5"]["1"] > 0.9 and acc["window"]["1"] > 0.9, acc
    assert acc["kn5"]["5"] < 0.25 and acc["window"]["5"] < 0.25, acc
    r = probe.run_probe(distances=(1,), families=("lstm",), steps=800, threads=1)
    assert r["accuracy"]["lstm"]["1"] > 0.9, r["accuracy"]
    lines, keys = probe.recall_lines(3, 5, seed=1)
    assert all(line.split()[0] == line.split()[-1] == k and len(line.split()) == 3 + 3 for line, k in zip(lines, keys))
