"""seqlm models inside a CTC beam-search decoder: pyctcdecode with a seqlm language model (the ``asr`` extra).

pyctcdecode is how most people put KenLM into CTC decoding.  :func:`build_ctcdecoder` is its function of the
same name with ``model`` instead of a KenLM file: any seqlm model (folder, ARPA file or loaded model).

* an n-gram model is queried through :mod:`seqlm.kenlm` (the same numbers and states as the kenlm module, so
  the best beams equal pyctcdecode + kenlm on the same ARPA file: tested);
* any other model (an LSTM, a mixture, an adapted model) is fused the same way, shallow fusion word by word:
  a beam's state is the model's state after its words, and a word is scored through the model's tokenizer.

pyctcdecode's conventions hold: the LM score of a word is ``alpha * ln p(word | words before) + beta``, a
word outside the unigrams gets ``unk_score_offset`` (log10, as pyctcdecode applies it), a partly decoded word
not on the way to any unigram is penalised, and the end of the utterance scores ``</s>``.

pyctcdecode pins numpy < 2 in its metadata but runs on numpy 2: install it with
``pip install --no-deps pyctcdecode pygtrie``.
"""

from __future__ import annotations

import math
from pathlib import Path

from seqlm.errors import SeqlmError
from seqlm.models.interface import LanguageModel as SeqlmModel
from seqlm.models.loader import load
from seqlm.models.ngram.model import NGramLM
from seqlm.text.vocab import EOS_ID, UNK_ID


def _pyctcdecode():
    try:
        import pyctcdecode
        from pyctcdecode import language_model
    except ImportError:
        raise SeqlmError("decoding needs pyctcdecode: pip install --no-deps pyctcdecode pygtrie") from None
    return pyctcdecode, language_model


def language_model(model, unigrams=None, alpha: float = 0.5, beta: float = 1.5, unk_score_offset: float = -10.0,
                   score_boundary: bool = True, word_fusion: bool = False):
    """A pyctcdecode language model backed by ``model`` (a path or a loaded seqlm model).

    ``unigrams``: the words the decoder may complete partial words towards (default: the model's
    vocabulary, less its special tokens).  ``word_fusion``: query an n-gram model word by word through its
    tokenizer, as every other kind is queried, instead of through :mod:`seqlm.kenlm` (the same beams:
    tested)."""
    _, lm_module = _pyctcdecode()
    if isinstance(model, (str, Path)):
        model = load(model, device="cpu")
    if not isinstance(model, SeqlmModel):
        raise TypeError(f"language_model() takes a seqlm model or its path, not {type(model).__name__}")
    if unigrams is None:
        unigrams = [w for w in model.vocab.itos if not (w.startswith("<") and w.endswith(">"))]
    ngram = isinstance(model, NGramLM) and model.tables.unseen != "uniform" and not word_fusion
    cls = _ngram_class(lm_module) if ngram else _fused_class(lm_module)
    return cls(model, unigrams, alpha=alpha, beta=beta, unk_score_offset=unk_score_offset,
               score_boundary=score_boundary)


def build_ctcdecoder(labels: list[str], model=None, unigrams=None, alpha: float = 0.5, beta: float = 1.5,
                     unk_score_offset: float = -10.0, lm_score_boundary: bool = True):
    """pyctcdecode's ``build_ctcdecoder`` with a seqlm ``model`` (None: no language model)."""
    pyctcdecode, _ = _pyctcdecode()
    from pyctcdecode.alphabet import Alphabet

    lm = None if model is None else language_model(model, unigrams, alpha, beta, unk_score_offset,
                                                   lm_score_boundary)
    return pyctcdecode.BeamSearchDecoderCTC(Alphabet.build_alphabet(labels), lm)


def _ngram_class(lm_module):
    """pyctcdecode's own LanguageModel over seqlm.kenlm: only the state type differs from the kenlm module's."""
    from seqlm import kenlm as skenlm

    class NGramLanguageModel(lm_module.LanguageModel):
        def __init__(self, model: NGramLM, unigrams, **kw):
            super().__init__(skenlm.Model(model), unigrams, **kw)

        def get_start_state(self):
            state = skenlm.State()
            if self.score_boundary:
                self._kenlm_model.BeginSentenceWrite(state)
            else:
                self._kenlm_model.NullContextWrite(state)
            return state

        def _get_raw_end_score(self, start_state) -> float:
            if not self.score_boundary:
                return 0.0
            return self._kenlm_model.BaseScore(start_state, "</s>", skenlm.State())

        def score(self, prev_state, word: str, is_last_word: bool = False):
            end_state = skenlm.State()
            lm_score = self._kenlm_model.BaseScore(prev_state, word, end_state)
            if (len(self._unigram_set) > 0 and word not in self._unigram_set) or word not in self._kenlm_model:
                lm_score += self.unk_score_offset
            if is_last_word:
                lm_score += self._get_raw_end_score(end_state)
            return self.alpha * lm_score / math.log10(math.e) + self.beta, end_state

    return NGramLanguageModel


def _fused_class(lm_module):
    """Any seqlm model, word by word: the state is the model's, a word is read through its tokenizer."""

    class FusedLanguageModel(lm_module.LanguageModel):
        def __init__(self, model: SeqlmModel, unigrams, **kw):
            self._model = model
            super().__init__(_Order(model), unigrams, **kw)

        def get_start_state(self):
            return self._model.start()

        def _ln_p(self, state, word: str):
            ids = self._model.vocab.encode(self._model.vocab.tokenizer.tokenize(word))
            if len(ids) == 0:  # pyctcdecode scores "" at the end of some beams: KenLM reads it as <unk>
                ids = [UNK_ID]
            total = 0.0
            for t in ids:
                total += float(self._model.next_logprobs(state)[t])
                state = self._model.advance(state, int(t))
            return total, state, UNK_ID in list(ids)

        def _get_raw_end_score(self, start_state) -> float:
            if not self.score_boundary:
                return 0.0
            return float(self._model.next_logprobs(start_state)[EOS_ID]) * math.log10(math.e)

        def score(self, prev_state, word: str, is_last_word: bool = False):
            ln_p, end_state, oov = self._ln_p(prev_state, word)
            lm_score = ln_p * math.log10(math.e)  # pyctcdecode's offsets are log10
            if (len(self._unigram_set) > 0 and word not in self._unigram_set) or oov:
                lm_score += self.unk_score_offset
            if is_last_word:
                lm_score += self._get_raw_end_score(end_state)
            return self.alpha * lm_score / math.log10(math.e) + self.beta, end_state

    return FusedLanguageModel


class _Order:
    """What pyctcdecode reads from its ``kenlm_model`` besides scoring: the order and ``word in model``."""

    def __init__(self, model: SeqlmModel):
        self.model = model
        self.order = getattr(model, "order", 1)

    def __contains__(self, word: str) -> bool:
        return self.model.vocab.stoi.get(word, UNK_ID) != UNK_ID


# -- synthetic emissions and word error rate (tests and bench/asr.py) ----------------------------------------
LABELS = [""] + [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]
# sounds an acoustic model mixes up: each letter's likely confusions
CONFUSABLE = {"b": "pd", "p": "bt", "d": "tb", "t": "dk", "g": "kj", "k": "gc", "c": "ks", "s": "zc", "z": "s",
              "f": "vp", "v": "fb", "m": "n", "n": "mu", "e": "ia", "i": "ey", "a": "eo", "o": "au", "u": "ow",
              "l": "r", "r": "l", "w": "v", "y": "i", "j": "g", "h": "a", "x": "ks", "q": "k", "'": " "}


def speakable(text: str) -> str:
    """``text`` as the characters of :data:`LABELS`: lowercased, other characters dropped, one space between
    words."""
    keep = "".join(ch for ch in text.lower() if ch in LABELS[1:])
    return " ".join(keep.split())


def synthetic_emissions(text: str, rng, confuse: float = 0.3, noise: float = 0.3):
    """(frames, len(LABELS)) log-probabilities a CTC acoustic model might emit for ``text``: 1-3 frames per
    character, blanks between (always between a repeated character), the peak on the character or, with
    probability ``confuse``, on a letter it sounds like (the character second); ``noise`` of the mass
    spread at random over every label."""
    import numpy as np

    index = {ch: i for i, ch in enumerate(LABELS)}
    frames: list[int] = []
    prev = None
    for ch in speakable(text):
        if ch == prev or rng.random() < 0.3:
            frames.append(0)
        frames += [index[ch]] * int(rng.integers(1, 4))
        prev = ch
    frames.append(0)
    out = np.empty((len(frames), len(LABELS)))
    for f, y in enumerate(frames):
        p = rng.dirichlet(np.full(len(LABELS), 0.3)) * noise
        peak = 1.0 - noise
        if y and rng.random() < confuse and LABELS[y] in CONFUSABLE:
            other = index[CONFUSABLE[LABELS[y]][int(rng.integers(len(CONFUSABLE[LABELS[y]])))]]
            share = rng.uniform(0.5, 0.8)
            p[other] += peak * share
            p[y] += peak * (1 - share)
        else:
            p[y] += peak
        out[f] = np.log(p / p.sum())
    return out.astype(np.float32)


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words): the Levenshtein distance over words."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)
