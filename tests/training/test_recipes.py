"""The catalogue of the "nothing silently wrong or lost" issue, case by case, where the right outcome is
a correct number or an intact file rather than an error (the errors are in test_bad_input_table.py)."""

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import seqlm
from conftest import REPO, step_by_step
from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.io.files import atomic_write
from seqlm.text.corpora import decode_lines
from seqlm.text.tokenize import Tokenizer
from seqlm.training.train import train_ngram


def test_witten_bell_by_hand():
    """Two sentences, "a b" and "a"; |V| = {<unk>, </s>, a, b} predictable (4).
    Unigrams (without <s>): a 2, b 1, </s> 2, total 5, 3 types: p(w) = (c(w) + 3/4) / (5 + 3):
      p(a) = p(</s>) = 2.75/8, p(b) = 1.75/8, p(<unk>) = 0.75/8.
    Context <s>: c = 2, one type (a): gamma = 1/3; p(a|<s>) = 2/3 + 1/3 p(a) = 0.78125, p(b|<s>) = 1/3 p(b).
    Context a: c = 2, two types (b, </s>): gamma = 1/2; p(b|a) = 1/4 + 1/2 p(b) = 0.359375.
    Context b: c = 1, one type: gamma = 1/2; p(</s>|b) = 1/2 + 1/2 p(</s>) = 0.671875."""
    lm = train_ngram(["a b", "a"], smoothing="wb", order=2)
    lp = lm.score_lines([lm.vocab.encode(["a", "b"])])[0]
    assert np.exp(lp) == pytest.approx([0.78125, 0.359375, 0.671875])
    state = lm.advance(lm.start(), lm.vocab.stoi["a"])
    p = np.exp(lm.next_logprobs(state))
    assert p[lm.vocab.stoi["a"]] == pytest.approx(0.5 * 2.75 / 8)
    assert p.sum() == pytest.approx(1.0)
    assert np.exp(lm.next_logprobs(lm.start()))[lm.vocab.stoi["b"]] == pytest.approx(1.75 / 8 / 3)


def test_witten_bell_is_arpa_and_kenlm_reads_it(tmp_path):
    lm = train_ngram(["a b c", "a b", "b c a", "c a b c"], smoothing="wb", order=3)
    seqlm.export(lm, tmp_path / "wb.arpa")
    back = seqlm.load(tmp_path / "wb.arpa")
    lines = [["a", "c", "b"], ["b", "b"]]
    ours = lm.score_lines([lm.vocab.encode(x) for x in lines])[0]
    theirs = back.score_lines([back.vocab.encode(x) for x in lines])[0]
    assert ours == pytest.approx(theirs, abs=1e-6)
    kenlm = pytest.importorskip("kenlm")
    k = kenlm.Model(str(tmp_path / "wb.arpa"))
    per_line = [ours[:4].sum(), ours[4:].sum()]  # 3 + 1 and 2 + 1 tokens (each line's </s> included)
    for line, ln_p in zip(lines, per_line):
        assert k.score(" ".join(line), bos=True, eos=True) == pytest.approx(ln_p / math.log(10), abs=1e-4)


def test_add_k_backs_off_after_any_unseen_context():
    lm = train_ngram(["a b c", "a b", "b c a"], smoothing="add-k", k=0.5, order=3)
    uni = np.exp(train_ngram(["a b c", "a b", "b c a"], smoothing="add-k", k=0.5, order=1).next_logprobs(()))
    unk = lm.vocab.stoi["<unk>"]
    # a one-word context never followed by a word (<unk>): the unigram add-k distribution, not 1/|V|
    after_unk = np.exp(lm.next_logprobs((lm.vocab.stoi["a"], unk)))
    assert after_unk == pytest.approx(uni)
    # an unseen two-word context ("c b") backs off to the bigram distribution after "b"
    bigram = train_ngram(["a b c", "a b", "b c a"], smoothing="add-k", k=0.5, order=2)
    b = lm.vocab.stoi["b"]
    assert np.exp(lm.next_logprobs((lm.vocab.stoi["c"], b))) == pytest.approx(np.exp(bigram.next_logprobs((b,))))
    # batched scoring follows the same rule
    ids = [lm.vocab.encode(["c", "b", "a"]), lm.vocab.encode(["zzz", "a"])]
    assert lm.score_lines(ids)[0] == pytest.approx(step_by_step(lm, ids))


def test_char_model_keeps_its_level_through_arpa(tmp_path, toy_lines):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(toy_lines[0][:300]) + "\n")
    test = tmp_path / "test.txt"
    test.write_text("\n".join(toy_lines[2][:50]) + "\n")
    assert main(["-q", "train", "--train", str(text), "--level", "char", "--order", "4", "--out",
                 str(tmp_path / "c"), "--arpa", str(tmp_path / "c.arpa")]) == 0
    folder = seqlm.evaluate(seqlm.load(tmp_path / "c"), test.read_text().splitlines())
    arpa = seqlm.evaluate(seqlm.load(tmp_path / "c.arpa"), test.read_text().splitlines())
    assert arpa["unit"] == "character" and arpa["perplexity"] == pytest.approx(folder["perplexity"], rel=1e-6)
    # an ARPA file without seqlm's mark (another tool's) is read at the level asked for
    stripped = "\n".join(x for x in (tmp_path / "c.arpa").read_text().split("\n") if "<seqlm:" not in x)
    stripped = re.sub(r"ngram 1=(\d+)", lambda m: f"ngram 1={int(m[1]) - 1}", stripped)
    (tmp_path / "foreign.arpa").write_text(stripped)
    as_char = seqlm.evaluate(seqlm.load(tmp_path / "foreign.arpa", level="char"), test.read_text().splitlines())
    assert as_char["perplexity"] == pytest.approx(folder["perplexity"], rel=1e-6)


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c"])
def test_a_line_ends_at_newline_only(sep):
    lines = decode_lines(f"one{sep}two\nthree\r\nfour".encode(), "t")
    assert lines == [f"one{sep}two", "three", "four"]


def test_json_output_is_strict(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("a b\na b\n")
    assert main(["-q", "train", "--train", str(tmp_path / "t.txt"), "--model", "mle", "--order", "2",
                 "--out", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    (tmp_path / "s.txt").write_text("b a\n")
    assert main(["score", str(tmp_path / "m"), "--file", str(tmp_path / "s.txt"), "--json"]) == 0
    out = capsys.readouterr().out

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    row = json.loads(out, parse_constant=refuse)
    assert row["log_prob"] is None and row["perplexity"] is None  # -inf / inf: the text is impossible


def test_files_get_the_users_permissions(tmp_path, toy_files):
    old = os.umask(0o022)
    try:
        assert main(["-q", "train", "--train", str(toy_files["train"]), "--out", str(tmp_path / "m"),
                     "--arpa", str(tmp_path / "m.arpa")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "m" / "config.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "m.arpa").stat().st_mode & 0o777 == 0o644


def test_temp_files_of_a_killed_writer_are_cleaned(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".out.json.{dead}.x1y2.tmp"
    stale.write_text("half")
    other = tmp_path / f".metrics.jsonl.{dead}.q9w8.tmp"  # another target in the same folder: also stale
    other.write_text("half")
    mine = tmp_path / f".out.json.{os.getpid()}.a1b2.tmp"  # a live writer's: left alone
    mine.write_text("in progress")
    unrelated = tmp_path / ".out.json.notes.tmp"  # not seqlm's pattern: left alone
    unrelated.write_text("user")
    with atomic_write(tmp_path / "out.json") as f:
        f.write("{}")
    assert not stale.exists() and not other.exists() and mine.exists() and unrelated.exists()
    assert (tmp_path / "out.json").read_text() == "{}"


def test_overwrite_replaces_only_an_ngram_folder(tmp_path, toy_files):
    out = tmp_path / "m"
    args = ["-q", "train", "--train", str(toy_files["train"]), "--out", str(out)]
    assert main(args) == 0
    before = json.loads((out / "config.json").read_text())["order"]
    assert main(args + ["--order", "2", "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["order"] == 2 != before


def test_nan_stop_without_checkpoint_says_so(tmp_path, toy_files):
    with pytest.raises(SeqlmError, match="no checkpoint was written"):
        seqlm.train(model="rnn_relu", train=toy_files["train"], out=tmp_path / "r",
                    overrides=["model.hidden_size=8", "model.embedding_dim=8", "train.lr=1e30", "train.clip=0",
                               "model.init_range=1", "train.batch_size=4", "train.bptt=8", "train.threads=1",
                               "train.checkpoint_every=100000"])


def test_literal_unk_counts_as_oov_as_in_kenlm():
    lm = train_ngram(["a b <unk> c", "a b"], order=2)
    r = seqlm.evaluate(lm, ["a <unk> zzz b"])
    assert r["oov"] == 2 and r["tokens"] == 5


def test_api_takes_one_line_and_refuses_wrong_types():
    lm = train_ngram(["a b c", "a b"], order=2)
    assert seqlm.score(lm, "a b")[0]["tokens"] == 3
    assert seqlm.evaluate(lm, "a b")["tokens"] == 3
    with pytest.raises(TypeError, match="takes a model"):
        seqlm.score("runs/kn5", ["a b"])
    with pytest.raises(TypeError, match="line"):
        seqlm.evaluate(lm, 5)
    with pytest.raises(TypeError, match="str"):
        seqlm.predict(lm, ["a"])
    with pytest.raises(TypeError, match="unexpected keyword"):
        seqlm.train(model="kn", orderr=3)


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "seqlm", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"seqlm {seqlm.__version__}"


def test_train_api_builds_any_kind(tmp_path, toy_files):
    lm, summary = seqlm.train(model="wb", order=3, train=toy_files["train"], valid=toy_files["valid"])
    assert summary["model"]["smoothing"] == "wb" and math.isfinite(summary["valid"]["perplexity"])
    lm, summary = seqlm.train(model="lstm", train=toy_files["train"], out=tmp_path / "l",
                              overrides=["model.hidden_size=8", "model.embedding_dim=8", "train.max_steps=2",
                                         "train.threads=1"])
    assert summary["model"]["kind"] == "lstm" and lm.vocab.tokenizer == Tokenizer("word")


def test_hand_edited_neural_config_of_an_old_folder(tmp_path, toy_files, capsys):
    """A folder from before checksums, edited by hand: the model section is typed and checked on load."""
    seqlm.train(model="lstm", train=toy_files["train"], out=tmp_path / "r",
                overrides=["model.hidden_size=8", "model.embedding_dim=8", "train.max_steps=2", "train.threads=1"])
    cfg_path = tmp_path / "r" / "model" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    for key in ("files", "config_sha256"):
        cfg.pop(key)
    for bad, words in (({"hidden_size": "big"}, "must be an int"), ({"kind": "hyena"}, "unknown model kind"),
                       ({"kind": "kn"}, "not a neural kind")):
        cfg_path.write_text(json.dumps({**cfg, "model": {**cfg["model"], **bad}}))
        assert main(["predict", str(tmp_path / "r"), "--prompt", "the"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0] and "config.json" in err[0], err


@pytest.mark.slow
@pytest.mark.slow
def test_cpu_recipe_runs_where_onednn_has_no_bf16(tmp_path, ptb_dir):
    """The CPU recipe asks for bf16; with oneDNN capped at AVX2 (as on an AVX2-only CPU, where its bf16 LSTM
    primitive does not exist) it trains in fp32 after one warning instead of crashing."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "SEQLM_DATA": str(ptb_dir)}
    recipe = str(REPO / "recipes" / "ptb" / "lstm-cpu.toml")
    out = subprocess.run([sys.executable, "-m", "seqlm", "train", recipe, "--set", "train.max_steps=3",
                          "--set", "train.eval_chunk=8192", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr.count("no native bf16") == 1 and "Traceback" not in out.stderr
    assert json.loads((tmp_path / "x" / "run.json").read_text())["precision"] == "fp32"
