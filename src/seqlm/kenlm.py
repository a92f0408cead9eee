"""The kenlm Python module's API over any seqlm n-gram model: ``import seqlm.kenlm as kenlm`` is the only
change code written for ``import kenlm`` needs.

Same names and meanings as the kenlm module (kpu/kenlm, python/kenlm.pyx):

* ``Model(path)`` / ``LanguageModel(path)``: a seqlm n-gram model folder or any ARPA file (plain or gzip),
  or (seqlm's addition) an n-gram model already loaded; ``.order``, ``.path``; ``word in model``.
* ``score(sentence, bos=True, eos=True)``: log10 p(sentence ``</s>`` | ``<s>``), the sentence split at
  whitespace as KenLM splits it; ``full_scores`` yields ``(log10 prob, ngram_length, oov)`` per word (and
  for ``</s>``), ``ngram_length`` being the length of the longest stored n-gram that matched;
  ``perplexity(sentence)`` = 10^(-score / (words + 1)).
* Step by step, as decoders use it: ``State`` (comparable, hashable, copyable), ``BeginSentenceWrite`` /
  ``NullContextWrite``, ``BaseScore(in_state, word, out_state)`` (log10) and ``BaseFullScore`` (a
  ``FullScoreReturn`` with ``log_prob``, ``ngram_length``, ``oov``).

A word outside the vocabulary is ``<unk>`` (``oov`` True, as a literal ``<unk>`` is); an ARPA file without
``<unk>`` gives it log10 p = -100, as KenLM does.  seqlm's own API (``seqlm.score``) stays in natural logs;
this module alone speaks log10.  ``Config``, ``LoadMethod`` and ``ARPALoadComplain`` are accepted for
compatibility and change nothing (seqlm memory-maps model folders and reads ARPA files in one way).
"""

from __future__ import annotations

import math
import os
import re
from functools import partial
from pathlib import Path

from seqlm.errors import SeqlmError
from seqlm.models.loader import load
from seqlm.models.ngram.arpa import LN10, MISSING_UNK_LOG10
from seqlm.models.ngram.model import NGramLM
from seqlm.text.vocab import BOS_ID, EOS_ID, UNK_ID

__all__ = ["Model", "LanguageModel", "State", "FullScoreReturn", "Config", "LoadMethod", "ARPALoadComplain"]

LOG10_E = 1.0 / math.log(10.0)  # ln -> log10


class PythonState:
    """The context of a query: what the next word's probability depends on.  Two states that predict the
    same are equal (the context is kept only as far as a longer n-gram can still match).  Where the compiled
    query loop is built, ``State`` is its C version (``fastquery.State``: the same behaviour, no tuple made
    per step); this one serves where it is not."""

    __slots__ = ("ranks",)

    def __init__(self):
        self.ranks: tuple = ()

    def __eq__(self, other):
        return isinstance(other, PythonState) and self.ranks == other.ranks

    def __lt__(self, other):
        return (len(self.ranks), self.ranks) < (len(other.ranks), other.ranks)

    def __le__(self, other):
        return self == other or self < other

    def __gt__(self, other):
        return other < self

    def __ge__(self, other):
        return self == other or other < self

    def __hash__(self):
        return hash(self.ranks)

    def __copy__(self):
        out = PythonState()
        out.ranks = self.ranks
        return out

    def __deepcopy__(self, memo):
        return self.__copy__()

    def __repr__(self):
        return f"State(length={len(self.ranks)})"


try:
    from seqlm.models.ngram.fastquery import State
except ImportError:  # not built: the Python reference (one warning when a model is loaded)
    State = PythonState


class FullScoreReturn:
    """``log_prob`` (log10), ``ngram_length`` (of the longest stored n-gram that matched) and ``oov``."""

    __slots__ = ("log_prob", "ngram_length", "oov")

    def __init__(self, log_prob: float, ngram_length: int, oov: bool):
        self.log_prob, self.ngram_length, self.oov = log_prob, ngram_length, oov

    def __repr__(self):
        return f"FullScoreReturn(log_prob={self.log_prob}, ngram_length={self.ngram_length}, oov={self.oov})"


class LoadMethod:
    LAZY, POPULATE_OR_LAZY, POPULATE_OR_READ, READ, PARALLEL_READ = range(5)


class ARPALoadComplain:
    ALL, EXPENSIVE, NONE = range(3)


class Config:
    """Accepted as kenlm.Config is; seqlm loads every model one way, so these change nothing."""

    def __init__(self):
        self.show_progress = True
        self.arpa_complain = ARPALoadComplain.ALL
        self.load_method = LoadMethod.LAZY


class Model:
    """A seqlm n-gram model (folder or ARPA file) behind the kenlm module's ``Model``."""

    def __init__(self, path, config: Config | None = None):
        if isinstance(path, NGramLM):  # seqlm's own addition: a model already loaded (path: "")
            self.path, lm = "", path
        elif isinstance(path, (str, bytes, os.PathLike)):
            self.path = os.path.abspath(os.fsdecode(path))
            lm = load(Path(self.path), device="cpu")
        else:
            raise TypeError(f"Model() takes a path, not {type(path).__name__}")
        if not isinstance(lm, NGramLM):
            raise SeqlmError(f"{self.path} is a {lm.describe().get('kind', 'neural')} model: seqlm.kenlm queries "
                             f"n-gram models (score others with seqlm.score)")
        if lm.tables.unseen == "uniform":
            raise SeqlmError(f"{self.path} is an add-k model, which has no ARPA backoff form: KenLM cannot "
                             f"query it either (score it with seqlm.score)")
        self.lm = lm
        self._stoi = lm.vocab.stoi
        self._begin = (BOS_ID,)[: lm.order - 1]
        # the compiled loop where it was built, else the Python reference (the same numbers, tested)
        self._fast = lm.querier()
        self._full_step = self._fast.step if self._fast is not None else lm.full_step
        # whole sentences: split and looked up in C, as the kenlm module does (its split, its vocabulary: a
        # literal <s> is the word <s>), or None (the Python reference, the same numbers)
        self._reader = lm.reader(KENLM_MODULE_BLANKS, LOG10_E, lm.vocab.stoi)
        self._step = self._full_step
        # KenLM gives a file without <unk> an <unk> of log10 p = -100 whose state keeps it as context (its
        # backoff is a plain 0, not the "no extension" mark): the same states, for equal decoder beams
        missing = MISSING_UNK_LOG10 * LN10  # as stored: a float32 (trie.py)
        self._unk_context = lm.order > 1 and abs(float(lm.trie.prob(1, [UNK_ID])[0]) - missing) <= 1e-6 * abs(missing)
        if self._unk_context:
            self._step = self._step_missing_unk
        if self._reader is not None and State is not PythonState:
            # the calls a loop makes most, bound to the compiled ones: no Python frame
            self.score = partial(self._fast.score_text, self._reader)
            self.BaseScore = partial(self._fast.base_score, self._reader, self._unk_context)
            self.BeginSentenceWrite = self._fast.begin_sentence_write
            self.NullContextWrite = self._fast.null_context_write

    @property
    def order(self) -> int:
        return self.lm.order

    def __contains__(self, word) -> bool:
        return self._stoi.get(word, UNK_ID) != UNK_ID

    def __repr__(self):
        return f"<Model from {os.path.basename(self.path)}>"

    def __reduce__(self):
        return (Model, (self.path,))

    def _step_missing_unk(self, ranks: tuple, word: int) -> tuple[float, int, tuple]:
        lp, n, after = self._full_step(ranks, word)
        return lp, n, ((UNK_ID,) if word == UNK_ID else after)

    def _id(self, word) -> int:
        if not isinstance(word, str):
            raise TypeError(f"a word is a str, not {type(word).__name__}")
        return self._stoi.get(word, UNK_ID)

    # -- whole sentences --------------------------------------------------------------------------
    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        """log10 p(sentence [``</s>``] | [``<s>``]); the sentence is split at whitespace."""
        if self._reader is not None:
            return self._fast.score_text(self._reader, sentence, bos, eos)
        step = self._step
        ranks = self._begin if bos else ()
        total = 0.0
        for word in _words(sentence):
            lp, _, ranks = step(ranks, self._stoi.get(word, UNK_ID))
            total += lp
        if eos:
            total += step(ranks, EOS_ID)[0]
        return total * LOG10_E

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True):
        """Yields ``(log10 prob, ngram_length, oov)`` for each word (and ``</s>`` with ``eos``)."""
        if self._reader is not None:
            yield from self._fast.full_scores_text(self._reader, sentence, bos, eos)
            return
        step = self._step
        ranks = self._begin if bos else ()
        for word in _words(sentence):
            wid = self._stoi.get(word, UNK_ID)
            lp, n, ranks = step(ranks, wid)
            yield lp * LOG10_E, n, wid == UNK_ID
        if eos:
            lp, n, _ = step(ranks, EOS_ID)
            yield lp * LOG10_E, n, False

    def perplexity(self, sentence: str) -> float:
        """10^(-log10 p / N) with N the words and ``</s>``, as KenLM computes it."""
        return 10.0 ** (-self.score(sentence) / (len(_words(sentence)) + 1))

    # -- step by step -----------------------------------------------------------------------------
    def BeginSentenceWrite(self, state: State) -> None:
        """Set ``state`` to the start of a sentence (the context ``<s>``)."""
        state.ranks = self._begin

    def NullContextWrite(self, state: State) -> None:
        """Set ``state`` to the empty context."""
        state.ranks = ()

    def BaseScore(self, in_state: State, word: str, out_state: State) -> float:
        """log10 p(``word`` | ``in_state``); ``out_state`` becomes the state after it."""
        if self._reader is not None:
            return self._fast.base_score(self._reader, self._unk_context, in_state, word, out_state)
        lp, _, out_state.ranks = self._step(in_state.ranks, self._id(word))
        return lp * LOG10_E

    def BaseFullScore(self, in_state: State, word: str, out_state: State) -> FullScoreReturn:
        """:meth:`BaseScore` with the matched n-gram's length and whether ``word`` is out of vocabulary."""
        if self._reader is not None:
            return FullScoreReturn(*self._fast.base_full_score(self._reader, self._unk_context, in_state, word,
                                                               out_state))
        wid = self._id(word)
        lp, n, out_state.ranks = self._step(in_state.ranks, wid)
        return FullScoreReturn(lp * LOG10_E, n, wid == UNK_ID)


class LanguageModel(Model):
    """Backwards compatibility stub, as in the kenlm module.  Use Model."""


KENLM_MODULE_BLANKS = b" \t\n\r\x0b\x0c"  # what the kenlm module splits at (bytes.split)
_KENLM_MODULE_SPLIT = re.compile(f"[{KENLM_MODULE_BLANKS.decode()}]+")


def _words(sentence) -> list[str]:
    """The words of a sentence as the kenlm module splits them: its UTF-8 bytes at ASCII whitespace (a no-break
    or an ideographic space is part of a word)."""
    if isinstance(sentence, bytes):
        sentence = sentence.decode("utf-8")
    if not isinstance(sentence, str):
        raise TypeError(f"a sentence is a str, not {type(sentence).__name__}")
    if sentence.isascii() and "\x1c" not in sentence and "\x1d" not in sentence and "\x1e" not in sentence \
            and "\x1f" not in sentence:
        return sentence.split()  # the same words, fastest
    return [w for w in _KENLM_MODULE_SPLIT.split(sentence) if w]
