"""Fast n-gram files: the vectorized ARPA reader/writer, memory-mapped model folders, streaming
evaluation, and ARPA files written by KenLM's lmplz read and scored as KenLM scores them."""

import math
import shutil
import subprocess
import tracemalloc

import numpy as np
import pytest

from conftest import REPO, drop_unk, lmplz_arpa
from seqlm.io.files import write_config
from seqlm.models.loader import load
from seqlm.models.ngram import fastio
from seqlm.models.ngram.arpa import write_arpa
from seqlm.models.ngram.arpa_reader import read_arpa
from seqlm.tasks.evaluate import evaluate
from seqlm.text import bytes as textbytes
from seqlm.text import toydata
from seqlm.text.corpora import read_lines
from seqlm.training.train import train_ngram


def test_number_parsing_is_exact():
    words = ["-1.2345678", "0", "-99", "+3.5", "-0.000012", "1e-05", "-2.5E+01", "7.", ".5", "-inf", "12345678901234567"]
    buf = np.frombuffer(" ".join(words).encode(), dtype=np.uint8)
    s, e = textbytes.tokens(buf)
    values, bad = fastio.parse_numbers(buf, s, e)
    assert not bad.any()
    assert values.tolist() == [float(w) for w in words]
    buf = np.frombuffer(b"1.2.3 abc - 4x", dtype=np.uint8)
    s, e = textbytes.tokens(buf)
    assert fastio.parse_numbers(buf, s, e)[1].tolist() == [True, True, True, True]


def test_number_formatting_round_trips():
    rng = np.random.default_rng(0)
    x = np.concatenate([-rng.exponential(2.0, 5000), rng.normal(0, 1, 500), [0.0, -0.0, -np.inf, -99.0, 123456.75]])
    mat, length = fastio.format_numbers(x)
    text = [bytes(r[:n]).decode() for r, n in zip(mat, length)]
    assert text[-3:] == ["-99", "-99.0000000", "123456.7500000"]
    back = np.array([float(t) for t in text])
    finite = np.isfinite(x)
    np.testing.assert_allclose(back[finite], x[finite], rtol=0, atol=5e-8)




@pytest.mark.parametrize("block", [64, 1 << 22])
def test_reader_is_independent_of_the_block_size(tmp_path, toy_lines, monkeypatch, block):
    from seqlm.models.ngram import arpa_reader as arpa

    lm = train_ngram(toy_lines[0], order=4)
    path = tmp_path / "m.arpa"
    write_arpa(lm, path)
    monkeypatch.setattr(arpa, "BLOCK", block)
    back = read_arpa(path)
    assert back.tables.sizes() == lm.tables.sizes()
    for a, b in zip(lm.tables.logprob, back.tables.logprob):
        never = a == -np.inf  # written as -99 (log10), read back as the number it is
        np.testing.assert_allclose(b[never], -99 * math.log(10))
        np.testing.assert_allclose(b[~never], a[~never], atol=2e-7)
    for a, b in zip(lm.tables.keys, back.tables.keys):
        np.testing.assert_array_equal(a, b)


def test_written_file_is_the_classic_layout(tmp_path):
    lm = train_ngram(["a b", "a c", "b a"], order=2)
    path = tmp_path / "m.arpa"
    write_arpa(lm, path)
    text = path.read_text()
    assert text.startswith("\\data\\\nngram 1=") and text.endswith("\n\\end\\\n")
    lines = text.split("\\2-grams:\n")[1].split("\n\n")[0].splitlines()
    assert all(len(line.split("\t")) == 2 and len(line.split("\t")[1].split()) == 2 for line in lines)
    uni = text.split("\\1-grams:\n")[1].split("\n\n")[0].splitlines()
    assert uni[0].startswith("-99\t<seqlm:tokenizer:") and any(line.startswith("-99\t<s>\t") for line in uni)


def test_unicode_words_and_spaces_in_files(tmp_path):
    lines = ["été à la plage", "à la mer", "la plage été"] * 5
    lm = train_ngram(lines, order=3)
    path = tmp_path / "u.arpa"
    write_arpa(lm, path)
    back = read_arpa(path)
    assert evaluate(back, lines)["log_prob"] == pytest.approx(evaluate(lm, lines)["log_prob"], rel=1e-6)
    # other tools separate fields with spaces, or add spaces and blank lines: same model
    text = path.read_text().replace("\t", "  ").replace("\n\\2-grams:", "\n\n\n\\2-grams:")
    (tmp_path / "s.arpa").write_text("header junk\n" + text)
    again = read_arpa(tmp_path / "s.arpa")
    assert evaluate(again, lines)["log_prob"] == pytest.approx(evaluate(lm, lines)["log_prob"], rel=1e-6)


def test_model_folder_is_memory_mapped(tmp_path, toy_lines):
    lm = train_ngram(toy_lines[0], order=3)
    lm.save(tmp_path / "m")
    back = load(tmp_path / "m")
    t = back.trie
    assert all(isinstance(a.base, np.memmap) and not a.flags.writeable for a in t.data + t.base[:-1])
    assert evaluate(back, toy_lines[1]) == evaluate(lm, toy_lines[1])


@pytest.mark.parametrize("old", ["tables", "model.npz"])
def test_folders_of_the_older_format_still_load(tmp_path, toy_lines, old):
    # seqlm-ngram-1: float64 columns, in tables/ (one .npy each, with hash indexes) or one model.npz
    import json

    lm = train_ngram(toy_lines[0], order=3)
    folder = tmp_path / "old"
    lm.save(folder)
    t = lm.tables
    arrays = {f"{n}{k}": a for n, arr in (("keys", t.keys), ("logprob", t.logprob), ("logbow", t.logbow))
              for k, a in enumerate(arr, start=1)}
    if old == "model.npz":
        np.savez(folder / "model.npz", **arrays)
    else:
        (folder / "tables").mkdir()
        for name, a in arrays.items():
            np.save(folder / "tables" / f"{name}.npy", a)
    shutil.rmtree(folder / "trie")
    config = json.loads((folder / "config.json").read_text())
    for key in ("files", "config_sha256", "table_bytes", "trie"):
        config.pop(key)
    config["format"] = "seqlm-ngram-1"
    write_config(folder, config)
    with pytest.warns(UserWarning, match="older seqlm format.*seqlm convert"):
        back = load(folder)
    assert evaluate(back, toy_lines[1]) == evaluate(lm, toy_lines[1])


def test_evaluation_memory_is_flat_in_the_text_length(toy_lines):
    lm = train_ngram(toy_lines[0], order=3)
    sentences = toy_lines[1]

    def peak(n_lines):
        gen = (sentences[i % len(sentences)] for i in range(n_lines))
        tracemalloc.start()
        r = evaluate(lm, gen, batch_lines=2000)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top, r

    small, r1 = peak(4000)
    big, r2 = peak(40000)
    assert r2["tokens"] > 9 * r1["tokens"]
    assert big < 1.3 * small
    # blocks change nothing: the same figures as one call on the whole list
    whole = evaluate(lm, [sentences[i % len(sentences)] for i in range(4000)])
    assert r1["tokens"] == whole["tokens"] and r1["log_prob"] == pytest.approx(whole["log_prob"], rel=1e-12)






@pytest.mark.parametrize("unk", [True, False])
def test_lmplz_files_score_as_kenlm_scores_them(tmp_path, unk):
    kenlm = pytest.importorskip("kenlm")
    lines = toydata.english(1500, seed=11)
    arpa = lmplz_arpa(tmp_path, lines[:1200], 4)
    if not unk:
        arpa = drop_unk(arpa, tmp_path / "nounk.arpa")
    ours = read_arpa(arpa)
    assert ("<unk>" in open(arpa).read()) == unk
    ken = kenlm.Model(str(arpa))
    test = lines[1200:] + ["the zebra sleeps quietly", "qqq the cat", "cat cat cat zzz"]
    enc = [ours.vocab.encode(line.split()) for line in test]
    flat, _ = ours.score_lines(enc)
    per_line = np.split(flat, np.cumsum([len(x) + 1 for x in enc])[:-1])
    for line, lp in zip(test, per_line):
        assert lp.sum() / math.log(10) == pytest.approx(ken.score(line, bos=True, eos=True), abs=2e-4)


@pytest.mark.slow
def test_generated_corpus_for_the_scale_benchmark(tmp_path):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("bench_corpus", REPO / "bench" / "corpus.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.size("30M") == 30_000_000 and gen.size("1.5k") == 1500
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    info = gen.write(a, 40_000, 20_000, seed=3)
    gen.write(b, 40_000, 20_000, seed=3)
    assert a.read_bytes() == b.read_bytes()  # a seed fixes the text
    lines = a.read_text().splitlines()
    words = [w for line in lines for w in line.split()]
    assert info["tokens"] == len(words) >= 40_000 and info["lines"] == len(lines)
    assert all(1 <= len(line.split()) <= 60 for line in lines)
    counts = sorted(np.unique(words, return_counts=True)[1])[::-1]
    assert len(counts) > 5000 and counts[0] > 20 * counts[len(counts) // 2]  # Zipfian: a long tail
    # idioms: some 4-grams repeat far more often than chance would make them
    grams = {}
    for line in lines:
        t = line.split()
        for i in range(len(t) - 3):
            grams[tuple(t[i:i + 4])] = grams.get(tuple(t[i:i + 4]), 0) + 1
    assert max(grams.values()) >= 10
    json.dumps(info)


def test_convert_writes_float32_and_quantized_folders(tmp_path, toy_lines, capsys):
    from seqlm.cli import main

    lm = train_ngram(toy_lines[0], order=4)
    write_arpa(lm, tmp_path / "m.arpa")
    assert main(["convert", str(tmp_path / "m.arpa"), str(tmp_path / "f32")]) == 0
    assert main(["convert", str(tmp_path / "f32"), str(tmp_path / "q8"), "--quantize", "8"]) == 0
    assert "8-bit values" in capsys.readouterr().out
    f32, q8 = load(tmp_path / "f32"), load(tmp_path / "q8")
    assert q8.config["quantize"] == 8 and "quantize" not in f32.config
    assert q8.trie.nbytes() < 0.75 * f32.trie.nbytes()
    a, b, c = (evaluate(m, toy_lines[1])["perplexity"] for m in (lm, f32, q8))
    assert b == pytest.approx(a, rel=1e-6) and c == pytest.approx(a, rel=0.02) and c != a
    for argv, message in ((["convert", str(tmp_path / "f32"), str(tmp_path / "q8")], "--overwrite"),
                          (["convert", str(tmp_path / "f32"), str(tmp_path / "x"), "--quantize", "17"], "1 to 16"),
                          (["convert", str(tmp_path / "f32"), str(tmp_path / "f32"), "--overwrite"], "another folder")):
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_words_are_split_as_lmplz_splits_them(tmp_path):
    # text full of spaces lmplz does not split at (no-break, ideographic, vertical tab, form feed, NEL, line
    # separator): the same n-gram counts as lmplz's, and lmplz's ARPA file of it reads and scores as KenLM's
    from conftest import LMPLZ

    if not LMPLZ.exists():
        pytest.skip("lmplz is not here")
    odd = ["\u00a0", "\u3000", "\x0b", "\x0c", "\x85", "\u2028", "\x1c", "\u2003"]
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    lines = []
    for i in range(400):
        toks = [str(rng.choice(words)) for _ in range(rng.integers(3, 9))]
        if i % 3 == 0:  # glue two words with an odd space: one word for lmplz
            j = int(rng.integers(0, len(toks) - 1))
            toks[j:j + 2] = [toks[j] + odd[i % len(odd)] + toks[j + 1]]
        sep = "\t" if i % 5 == 0 else " "
        lines.append(sep.join(toks) + ("\r" if i % 7 == 0 else ""))
    text = tmp_path / "odd.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    arpa = tmp_path / "lmplz.arpa"
    with open(text, "rb") as f, open(arpa, "wb") as out:
        subprocess.run([str(LMPLZ), "-o", "3", "-S", "64M", "--discount_fallback"], stdin=f, stdout=out, stderr=subprocess.DEVNULL,
                       check=True)
    theirs = read_arpa(arpa)
    ours = train_ngram(read_lines(text), order=3)
    assert ours.tables.sizes() == theirs.tables.sizes()
    assert set(ours.vocab.itos) == set(theirs.vocab.itos)
    glued = [w for w in ours.vocab.itos if any(c in w for c in odd)]
    assert len(glued) > 10
    import kenlm

    ken = kenlm.Model(str(arpa))
    from seqlm.kenlm import Model

    mine = Model(str(arpa))
    for line in lines[:50]:
        assert mine.score(line) == pytest.approx(ken.score(line), abs=1e-4)


def test_text_after_the_end_marker_is_named(tmp_path, toy_lines, caplog, monkeypatch):
    import logging

    lm = train_ngram(toy_lines[0][:300], order=2)
    path = tmp_path / "joined.arpa"
    write_arpa(lm, path)
    path.write_text(path.read_text() * 2)  # two files joined
    monkeypatch.setattr(logging.getLogger("seqlm"), "propagate", True)  # seqlm's own handler: not caplog's
    with caplog.at_level(logging.WARNING, logger="seqlm"):
        back = read_arpa(path)
    assert "text after \\end\\ is ignored" in caplog.text and back.tables.sizes() == lm.tables.sizes()


def test_a_file_of_a_model_folder_is_not_read_as_arpa(tmp_path, toy_lines):
    from seqlm.errors import SeqlmError

    train_ngram(toy_lines[0][:300], order=2).save(tmp_path / "m")
    with pytest.raises(SeqlmError, match="is a file of the model folder .*: give the folder"):
        load(tmp_path / "m" / "config.json")


def test_odd_arpa_files_are_named_in_warnings(tmp_path, toy_lines, caplog, monkeypatch):
    import logging

    lm = train_ngram(toy_lines[0][:300], order=2)
    path = tmp_path / "m.arpa"
    write_arpa(lm, path)
    lines = path.read_text().split("\n")
    top = lines.index("\\2-grams:") + 1
    lines[top] = lines[top] + "\t-0.5"  # a backoff weight on the highest order
    uni = lines.index("\\1-grams:") + 2  # after the tokenizer mark
    lines[uni] = "-0.0001\t" + lines[uni].split("\t", 1)[1]  # a unigram of probability ~1: mass above 1
    path.write_text("\n".join(lines))
    monkeypatch.setattr(logging.getLogger("seqlm"), "propagate", True)  # seqlm's own handler: not caplog's
    with caplog.at_level(logging.WARNING, logger="seqlm"):
        read_arpa(path)
    assert "the highest order (2-grams) has backoff weights" in caplog.text
    assert "unigram probabilities sum to" in caplog.text
