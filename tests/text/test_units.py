"""Units (text/subword.py, text/tokenize.py): bytes and learned subword pieces (bpe, unigram) as tokens, for every
family: learned from the training split only, saved with the model, read back the same; the text comes back whole
from its tokens; n-gram (in memory and from a file) and neural models train and evaluate on them."""

import json

import numpy as np
import pytest

import seqlm
from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.text import subword
from seqlm.text.tokenize import Tokenizer

pytest.importorskip("tokenizers")

TEXT = ["Café au lait, s'il vous plaît!", "the  cat\tsat on\u00a0the mat", "naïve 日本語 text"]


def test_bytes_are_tokens_without_whitespace_and_come_back_whole():
    tok = Tokenizer("byte")
    for line in TEXT:
        toks = tok.tokenize(line)
        assert len(toks) == len(" ".join(line.split()).encode("utf-8"))
        assert all(t and not any(c.isspace() for c in t) for t in toks)
        assert tok.detokenize(toks) == " ".join(line.split())
    assert tok.tokenize("a b") == ["a", subword.SPACE, "b"] and tok.tokenize("é") == ["<0xC3>", "<0xA9>"]
    assert tok.unit == "byte" and tok.text_level == "word"


@pytest.mark.parametrize("level", ["bpe", "unigram"])
def test_pieces_are_learned_from_the_training_text_and_saved_with_the_tokenizer(level, toy_lines):
    train = toy_lines[0]
    tok = Tokenizer(level, lowercase=True).learned(train, 300)
    assert subword.describe(tok.model)["pieces"] <= 300
    again = Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again == tok
    for line in train[:50] + ["An unseen line, WITH CAPS."]:
        pieces = tok.tokenize(line)
        assert pieces == again.tokenize(line)
        assert pieces[0].startswith(subword.SPACE)  # a piece that begins a word says so
        assert tok.detokenize(pieces) == " ".join(line.lower().split())
    assert Tokenizer(level).learned(train, 300).model == Tokenizer(level).learned(train, 300).model  # deterministic
    with pytest.raises(SeqlmError, match="has learned no pieces yet"):
        Tokenizer(level).tokenize("a line")


@pytest.mark.parametrize("level,kind", [("bpe", "kn"), ("unigram", "kn"), ("byte", "kn"), ("bpe", "lstm")])
def test_every_family_trains_on_units_and_reloads(tmp_path, toy_files, level, kind):
    out = tmp_path / "m"
    args = ["train", "--train", str(toy_files["train"]), "--valid", str(toy_files["valid"]), "--model", kind,
            "--level", level, "--set", "data.vocab_size=400", "--out", str(out)]
    if kind == "kn":
        args += ["--order", "4"]
    else:
        args += ["--set", "model.hidden_size=32", "--set", "model.embedding_dim=32", "--set", "train.max_steps=20",
                 "--set", "train.fit=false"]
    assert main(args) == 0
    lm = seqlm.load(out)
    tok = lm.vocab.tokenizer
    assert tok.level == level and (level == "byte" or tok.model is not None)
    if level != "byte":
        assert len(lm.vocab) <= 400 + 3
    r = seqlm.evaluate(lm, toy_files["test"].read_text().splitlines())
    assert np.isfinite(r["perplexity"]) and r["bits_per_byte"] > 0 and r["word_perplexity"] > 1
    # the pieces came from the training text only: the same model learned again gives the same vocabulary
    if level in ("bpe", "unigram"):
        assert tok.model == Tokenizer(level).learned(toy_files["train"].read_text().splitlines(), 400).model


def test_units_from_a_file_equal_units_in_memory(tmp_path, toy_files):
    """An n-gram model estimated from the file (bounded memory) equals the in-memory one at bpe level."""
    from models.ngram.test_external import assert_same_model, external
    from seqlm.text.corpora import read_lines
    from seqlm.training.train import train_ngram

    tok = Tokenizer("bpe").learned(read_lines(toy_files["train"]), 300)
    ref = train_ngram(read_lines(toy_files["train"]), order=4, tokenizer=tok)
    lm, _ = external(toy_files["train"], tmp_path, order=4, tokenizer=tok, memory="64K")
    assert_same_model(ref, lm)


def test_bad_unit_options_are_one_line(tmp_path, toy_files, capsys):
    base = ["train", "--train", str(toy_files["train"]), "--out", str(tmp_path / "m")]
    assert main(base + ["--level", "sentencepiece"]) == 2
    assert "data.level must be one of word, char, bpe, unigram, byte" in capsys.readouterr().err
    assert main(base + ["--level", "bpe", "--vocab-size", "100"]) == 2
    assert "data.vocab_size must be at least 260 for bpe (got 100): the 256 byte pieces" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_an_arpa_file_carries_the_pieces(tmp_path, toy_files):
    """A subword model's ARPA file holds its pieces (in the tokenizer's mark): read back alone, it reads text as
    the model did and scores the same; KenLM reads the file too."""
    out, arpa = tmp_path / "m", tmp_path / "m.arpa.gz"
    assert main(["-q", "train", "--train", str(toy_files["train"]), "--model", "kn", "--order", "4", "--level",
                 "unigram", "--vocab-size", "300", "--out", str(out), "--arpa", str(arpa)]) == 0
    lm, back = seqlm.load(out), seqlm.load(arpa)
    assert back.vocab.tokenizer == lm.vocab.tokenizer
    lines = toy_files["test"].read_text().splitlines()
    assert seqlm.evaluate(back, lines)["perplexity"] == pytest.approx(seqlm.evaluate(lm, lines)["perplexity"],
                                                                      rel=1e-5)
    kenlm = pytest.importorskip("kenlm")
    ken = kenlm.Model(str(arpa))
    line = lm.vocab.tokenizer.tokenize(lines[0])
    assert ken.score(" ".join(line), bos=True, eos=True) == pytest.approx(
        float(np.sum(lm.score_lines([lm.vocab.encode(line)])[0])) / np.log(10), abs=1e-3)


def test_the_tools_work_on_pieces(tmp_path, toy_files, capsys):
    """Mixtures, rescoring and the kenlm-compatible API on subword models: a KN and an LSTM that share their
    pieces mix (the fitted mixture no worse than its best part on the text it was fitted on); rescoring ranks
    by the pieces' log-prob and counts its word penalty in words; ``seqlm.kenlm`` reads a piece-level model as
    KenLM reads its ARPA file (the pieces are its words); a piece model and a word model do not mix."""
    from seqlm.tasks.rescore import Hypothesis, rescore

    base = ["-q", "train", "--train", str(toy_files["train"]), "--valid", str(toy_files["valid"]), "--level", "bpe",
            "--vocab-size", "300"]
    kn, lstm, word = tmp_path / "kn", tmp_path / "lstm", tmp_path / "word"
    assert main(base + ["--model", "kn", "--order", "4", "--out", str(kn), "--arpa", str(tmp_path / "kn.arpa")]) == 0
    assert main(base + ["--model", "lstm", "--set", "model.hidden_size=32", "--set", "model.embedding_dim=32",
                        "--set", "train.max_steps=30", "--set", "train.fit=false", "--out", str(lstm)]) == 0
    assert main(["-q", "train", "--train", str(toy_files["train"]), "--order", "3", "--out", str(word)]) == 0
    res = seqlm.mix([kn, lstm], out=tmp_path / "mix", valid=toy_files["valid"])
    best = min(p["valid_perplexity"] for p in res["parts"])
    assert res["metrics"]["valid_perplexity"] <= best * (1 + 1e-6)
    mixed = seqlm.load(tmp_path / "mix")
    lines = toy_files["test"].read_text().splitlines()[:20]
    assert np.isfinite(seqlm.evaluate(mixed, lines)["bits_per_byte"])

    lm = seqlm.load(kn)
    good = lines[0]
    bad = " ".join(reversed(good.split()))
    rows, best_rows = rescore(lm, [Hypothesis(1, "u-1", "u", None, bad), Hypothesis(2, "u-2", "u", None, good)],
                              word_penalty=-0.5)
    assert best_rows[0]["text"] == good
    assert [r["words"] for r in rows] == [len(bad.split()), len(good.split())]
    assert rows[1]["total"] == pytest.approx(rows[1]["lm_log_prob"] - 0.5 * len(good.split()))

    import seqlm.kenlm as skenlm

    pieces = " ".join(lm.vocab.tokenizer.tokenize(good))
    model = skenlm.Model(str(kn))
    assert model.score(pieces) == pytest.approx(seqlm.score(lm, good)[0]["log_prob"] / np.log(10), abs=1e-5)
    kenlm = pytest.importorskip("kenlm")
    ken = kenlm.Model(str(tmp_path / "kn.arpa"))
    ours, theirs = list(model.full_scores(pieces)), list(ken.full_scores(pieces))
    assert [x[1:] for x in ours] == [x[1:] for x in theirs]  # matched lengths, oov flags
    assert [x[0] for x in ours] == pytest.approx([x[0] for x in theirs], abs=1e-4)

    assert main(["mix", str(kn), str(word), "--out", str(tmp_path / "bad"), "--valid", str(toy_files["valid"])]) == 2
    err = capsys.readouterr().err
    assert err.count("seqlm: error:") == 1 and "Traceback" not in err and not (tmp_path / "bad").exists()


@pytest.mark.parametrize("level", ["bpe", "unigram"])
def test_pieces_cut_in_a_batch_equal_pieces_cut_line_by_line(level, toy_lines):
    """tokenize_many (the library's batch, what reading a file and scoring many lines call) gives each line the
    pieces tokenize gives it: blank and odd lines, lowercasing and whitespace included."""
    tok = Tokenizer(level, lowercase=True).learned(toy_lines[0], 300)
    lines = toy_lines[1][:200] + ["", "   ", "Café  AU\tlait", "日本語 text", "a\u00a0b", "THE END."]
    assert tok.tokenize_many(lines) == [tok.tokenize(line) for line in lines]
    word = Tokenizer("word")
    assert word.tokenize_many(lines) == [word.tokenize(line) for line in lines]
