"""ARPA back-off files: write an :class:`NGramLM`, and read any ARPA file (lmplz's, SRILM's, ours).

The only place in seqlm where log10 appears: ARPA stores log10 probabilities and backoff weights,
seqlm stores natural logs.  ``-inf`` is written as -99 (the ARPA convention, as lmplz does for
``<s>``); -99 read back is kept as the number it is, 1e-99.  Files ending in ``.gz`` (or starting with the
gzip magic bytes) are compressed/decompressed transparently.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from ..errors import SeqlmError
from ..files import atomic_write
from ..text.tokenize import Tokenizer
from ..text.vocab import BOS, EOS, SPECIALS, UNK, Vocab
from .model import NGramLM, _find
from .smoothing import Tables

LN10 = math.log(10.0)
# The tokenizer travels inside the file as one extra unigram that no text contains, with probability
# 10^-99 (the ARPA convention for "never"): KenLM reads such a file unchanged (it refuses any line before
# \data\ or after \end\), and seqlm reads the level back instead of guessing "word".
MARK = "<seqlm:tokenizer:"


def _mark(tokenizer: Tokenizer) -> str:
    return f"{MARK}level={tokenizer.level}:lowercase={int(tokenizer.lowercase)}>"


def _parse_mark(word: str, bad: str) -> Tokenizer:
    try:
        fields = dict(f.split("=", 1) for f in word[len(MARK):-1].split(":"))
        return Tokenizer(fields["level"], bool(int(fields["lowercase"])))
    except (ValueError, KeyError, SeqlmError):
        raise SeqlmError(f"{bad}: unreadable tokenizer mark {word!r}: re-export the model") from None


def _fmt(x: float) -> str:
    return "-99" if x == -np.inf else f"{x:.7g}"


def ngram_words(model: NGramLM) -> list[np.ndarray]:
    """(U_k, k) word-id matrix of the stored n-grams of every order, in key order."""
    t = model.tables
    V = t.vocab_size
    words = [np.arange(V, dtype=np.int64)[:, None]]
    for k in range(2, model.order + 1):
        keys = t.keys[k - 1]
        words.append(np.concatenate([words[-1][keys // V], (keys % V)[:, None]], axis=1))
    return words


def write_arpa(model: NGramLM, path: str | Path) -> None:
    """Write ``model`` as an ARPA file (gzip'd if ``path`` ends in .gz), atomically."""
    if not isinstance(model, NGramLM):
        raise SeqlmError(f"a {getattr(model, 'kind', type(model).__name__)} model cannot be written as ARPA: "
                         f"only n-gram models can")
    t = model.tables
    if t.unseen != "backoff" and model.order > 1:
        raise SeqlmError("add-k smoothing above order 1 cannot be written as ARPA (backoff cannot spread "
                         "the added mass uniformly): export an mle, ikn or mkn model")
    path = Path(path)
    itos = np.array(model.vocab.itos, dtype=object)
    words = ngram_words(model)
    opener = (lambda f: gzip.open(f, "wt", encoding="utf-8", compresslevel=6)) if path.suffix == ".gz" else None
    with atomic_write(path, "wb") as raw:
        handle = opener(raw) if opener else None
        out = handle if handle else _TextOut(raw)
        out.write("\\data\\\n")
        for k in range(1, model.order + 1):
            out.write(f"ngram {k}={len(t.keys[k - 1]) + (k == 1)}\n")
        for k in range(1, model.order + 1):
            out.write(f"\n\\{k}-grams:\n")
            if k == 1:
                out.write(f"-99\t{_mark(model.vocab.tokenizer)}\n")
            names = itos[words[k - 1][:, 0]]
            for j in range(1, k):
                names = names + " " + itos[words[k - 1][:, j]]
            lp = t.logprob[k - 1] / LN10
            if k < model.order:
                lb = t.logbow[k - 1] / LN10
                lines = [f"{_fmt(p)}\t{n}\t{_fmt(b)}\n" if b != 0 else f"{_fmt(p)}\t{n}\n"
                         for p, n, b in zip(lp.tolist(), names.tolist(), lb.tolist())]
            else:
                lines = [f"{_fmt(p)}\t{n}\n" for p, n in zip(lp.tolist(), names.tolist())]
            out.write("".join(lines))
        out.write("\n\\end\\\n")
        if handle:
            handle.close()


class _TextOut:
    def __init__(self, raw):
        self.raw = raw

    def write(self, s: str) -> None:
        self.raw.write(s.encode("utf-8"))


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SeqlmError(f"{path}: no such ARPA file: check the path") from None
    except IsADirectoryError:
        raise SeqlmError(f"{path} is a folder: give an ARPA file or a seqlm model folder") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise SeqlmError(f"{path} is a damaged gzip file ({e}): re-create or re-download it") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SeqlmError(f"{path} is not UTF-8 (byte at offset {e.start}): give a UTF-8 ARPA file") from None


def read_arpa(path: str | Path, tokenizer: Tokenizer | None = None) -> NGramLM:
    """Load an ARPA file as an :class:`NGramLM` (its vocabulary is the file's unigrams)."""
    path = Path(path)
    text = _read_text(path)
    bad = f"{path} is not a valid ARPA file"
    start = text.find("\\data\\")
    if start < 0:
        raise SeqlmError(f"{bad}: no \\data\\ header: give an ARPA file")
    body = text[start:]
    if "\\end\\" not in body:
        raise SeqlmError(f"{bad}: no \\end\\ marker (truncated?): re-create the file")
    sections = body.split("\\end\\")[0].split("\n\\")
    counts: dict[int, int] = {}
    for line in sections[0].splitlines()[1:]:
        line = line.strip()
        if not line:
            continue
        if not line.startswith("ngram ") or "=" not in line:
            raise SeqlmError(f"{bad}: unexpected header line {line!r}")
        try:
            k, n = line[6:].split("=")
            counts[int(k)] = int(n)
        except ValueError:
            raise SeqlmError(f"{bad}: unreadable header line {line!r}") from None
    if not counts or sorted(counts) != list(range(1, max(counts) + 1)):
        raise SeqlmError(f"{bad}: the header must list ngram 1=..., ngram 2=..., without gaps")
    order = max(counts)
    entries: dict[int, tuple[list, list, list]] = {}
    for section in sections[1:]:
        head, _, rest = section.partition("\n")
        head = head.strip()
        if not (head.endswith("-grams:") and head[:-7].isdigit()):
            raise SeqlmError(f"{bad}: unexpected section {head!r}")
        k = int(head[:-7])
        if k not in counts or k in entries:
            raise SeqlmError(f"{bad}: section \\{k}-grams: not announced in the header or repeated")
        probs, grams, bows = [], [], []
        for lineno, line in enumerate(rest.splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) not in (k + 1, k + 2):
                raise SeqlmError(f"{bad}: in \\{k}-grams:, line {lineno} has {len(fields)} fields "
                                 f"(expected {k + 1} or {k + 2}): {line[:80]!r}")
            try:
                prob = float(fields[0])
                bow = float(fields[k + 1]) if len(fields) == k + 2 else 0.0
            except ValueError:
                raise SeqlmError(f"{bad}: in \\{k}-grams:, line {lineno} has a non-number: {line[:80]!r}") from None
            if not (prob <= 0.0) or not math.isfinite(bow):  # NaN fails both comparisons
                raise SeqlmError(f"{bad}: in \\{k}-grams:, line {lineno}: a log10 probability must be <= 0 and "
                                 f"a backoff weight finite: {line[:80]!r}")
            probs.append(prob)
            bows.append(bow)
            grams.append(fields[1:k + 1])
        if len(grams) != counts[k]:
            raise SeqlmError(f"{bad}: the header announces {counts[k]} {k}-grams but the file has {len(grams)} "
                             f"(truncated?)")
        entries[k] = (probs, grams, bows)
    if set(entries) != set(counts):
        missing = sorted(set(counts) - set(entries))
        raise SeqlmError(f"{bad}: missing section(s) {missing} (truncated?)")
    marked = _take_mark(entries[1], bad)
    if marked and tokenizer and (marked.level, marked.lowercase) != (tokenizer.level, tokenizer.lowercase):
        raise SeqlmError(f"{path} was written for {marked.level}-level text (lowercase={marked.lowercase}): "
                         f"drop --level, or give a matching one")
    return _build(entries, order, marked or tokenizer or Tokenizer(), bad, str(path))


def _take_mark(unigrams: tuple[list, list, list], bad: str) -> Tokenizer | None:
    """Remove seqlm's tokenizer mark from the unigram entries (in place) and return its tokenizer."""
    probs, grams, bows = unigrams
    at = [i for i, g in enumerate(grams) if g[0].startswith(MARK)]
    if not at:
        return None
    if len(at) > 1:
        raise SeqlmError(f"{bad}: more than one tokenizer mark")
    i = at[0]
    tokenizer = _parse_mark(grams[i][0], bad)
    for column in unigrams:
        del column[i]
    return tokenizer


def _build(entries, order, tokenizer, bad, source) -> NGramLM:
    uni_probs, uni_grams, uni_bows = entries[1]
    words = [g[0] for g in uni_grams]
    if len(set(words)) != len(words):
        raise SeqlmError(f"{bad}: repeated unigram")
    for special in (BOS, EOS):
        if special not in words:
            raise SeqlmError(f"{bad}: no {special} unigram")
    itos = list(SPECIALS) + [w for w in words if w not in SPECIALS]
    vocab = Vocab(itos, tokenizer)
    V = len(vocab)
    stoi = vocab.stoi
    logprob1 = np.full(V, -np.inf)
    logbow1 = np.zeros(V)
    ids1 = np.array([stoi[w] for w in words], dtype=np.int64)
    logprob1[ids1] = np.array(uni_probs) * LN10
    logbow1[ids1] = np.array(uni_bows) * LN10
    if UNK not in words:
        logprob1[stoi[UNK]] = -np.inf
    keys, logprob, logbow = [np.arange(V, dtype=np.int64)], [logprob1], [logbow1]
    for k in range(2, order + 1):
        probs, grams, bows = entries[k]
        try:
            ids = np.array([[stoi[w] for w in g] for g in grams], dtype=np.int64).reshape(len(grams), k)
        except KeyError as e:
            raise SeqlmError(f"{bad}: the {k}-grams use the word {e.args[0]!r}, which has no unigram") from None
        rank = ids[:, 0]
        for j in range(1, k - 1):
            idx, found = _find(keys[j], rank * V + ids[:, j])
            if not found.all():
                i = int(np.flatnonzero(~found)[0])
                raise SeqlmError(f"{bad}: the {k}-gram {' '.join(grams[i])!r} has no entry for its context "
                                 f"{' '.join(grams[i][:j + 1])!r}")
            rank = idx
        key = rank * V + ids[:, -1]
        order_idx = np.argsort(key, kind="stable")
        key = key[order_idx]
        if len(key) > 1 and not (np.diff(key) > 0).all():
            raise SeqlmError(f"{bad}: a {k}-gram is listed twice")
        keys.append(key)
        logprob.append(np.array(probs)[order_idx] * LN10)
        logbow.append(np.array(bows)[order_idx] * LN10)
    tables = Tables(V, keys, logprob, logbow, "backoff", {"source": source})
    return NGramLM(vocab, tables, {"smoothing": "arpa", "arpa": source})
