"""predict (top-k next tokens) and generate (sampling), written once against the model interface.

Decoding never produces ``<s>``; it leaves out ``<unk>`` unless ``allow_unk``.  Sampling transforms the
model's distribution in this order: temperature, top-k, top-p (nucleus); ``greedy`` (or top_k=1) takes
the most probable token.  The reported ``log_prob`` of a generated text is under the model's own,
untransformed distribution (natural log), so it is comparable across decoding settings.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.models.interface import LanguageModel, State, check_model
from seqlm.text.vocab import BOS_ID, EOS_ID, UNK_ID

log = logging.getLogger(__name__)


def check_integer(value, name: str, minimum: int, optional: bool = False) -> None:
    """An integer option of the API (``--name`` on the command line): a wrong type is a TypeError, a value
    below ``minimum`` one line naming the option (a numpy error deep inside otherwise)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise SeqlmError(f"--{name.replace('_', '-')} must be >= {minimum} (got {value})")


def read_prompt(model: LanguageModel, prompt: str) -> tuple[State, list[str]]:
    """State after ``<s>`` and the prompt's tokens; refuses a prompt made only of unknown tokens."""
    vocab = model.vocab
    tokens = vocab.tokenizer.tokenize(prompt)
    unknown = [t for t in tokens if t not in vocab]
    if tokens and len(unknown) == len(tokens):
        raise SeqlmError(f"every token of the prompt {prompt!r} is outside the model's vocabulary: "
                         f"use words the model knows (or no prompt)")
    if unknown:
        log.warning("unknown in the prompt, read as <unk>: %s", " ".join(sorted(set(unknown))))
    state = model.start()
    for i in vocab.encode(tokens):
        state = model.advance(state, int(i))
    return state, tokens


def _banned(allow_unk: bool) -> list[int]:
    return [BOS_ID] if allow_unk else [BOS_ID, UNK_ID]


def predict(model: LanguageModel, prompt: str, top_k: int = 5, allow_unk: bool = False) -> list[dict]:
    """The ``top_k`` most probable next tokens after ``prompt`` (``</s>`` included), most probable first."""
    check_model(model, "predict")
    if not isinstance(prompt, str):
        raise TypeError(f"predict() takes the prompt as one str, not {type(prompt).__name__}")
    check_integer(top_k, "top_k", 1)
    state, _ = read_prompt(model, prompt)
    logp = model.next_logprobs(state)
    return [{"token": model.vocab.itos[i], "prob": float(math.exp(logp[i])), "log_prob": float(logp[i])}
            for i in top_ids(logp, top_k, allow_unk)]


def top_ids(logp: np.ndarray, k: int, allow_unk: bool = False) -> np.ndarray:
    """The ids of the ``k`` most probable tokens of ``logp`` (fewer if fewer have a finite probability),
    most probable first, ties in id order; never ``<s>``, and ``<unk>`` only with ``allow_unk``."""
    masked = logp.copy()
    masked[_banned(allow_unk)] = -np.inf
    k = min(k, int(np.isfinite(masked).sum()))
    if not k:
        return np.zeros(0, dtype=np.int64)
    best = np.argpartition(-masked, k - 1)[:k]
    return best[np.argsort(-masked[best], kind="stable")]


def sampling_distribution(logp: np.ndarray, temperature: float, top_k: int | None, top_p: float | None) -> np.ndarray:
    """Probabilities to sample from after temperature, top-k and top-p."""
    finite = np.isfinite(logp)
    if not finite.any():
        raise SeqlmError("the model gives no token a non-zero probability here: use another model or prompt")
    z = np.where(finite, logp / temperature, -np.inf)
    if top_k is not None and top_k < finite.sum():
        cut = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= cut, z, -np.inf)
        # ties at the cut could keep more than k; keep the first k by (value, index)
        if (z > -np.inf).sum() > top_k:
            keep = np.argsort(-z, kind="stable")[:top_k]
            mask = np.full_like(z, -np.inf)
            mask[keep] = z[keep]
            z = mask
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        n_keep = int(np.searchsorted(cum, top_p) + 1)
        q = np.zeros_like(p)
        q[order[:n_keep]] = p[order[:n_keep]]
        p = q / q.sum()
    return p


def generate(
    model: LanguageModel,
    prompt: str = "",
    max_tokens: int = 50,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    seed: int | None = None,
    allow_unk: bool = False,
) -> dict:
    """Continue ``prompt``; returns the text, its generated tokens, the model log-prob of those tokens,
    and why it stopped (``"eos"`` or ``"max_tokens"``)."""
    check_model(model, "generate")
    if not isinstance(prompt, str):
        raise TypeError(f"generate() takes the prompt as one str, not {type(prompt).__name__}")
    check_integer(max_tokens, "max_tokens", 1)
    check_integer(seed, "seed", 0, optional=True)
    check_integer(top_k, "top_k", 1, optional=True)
    for name, value in (("temperature", temperature), ("top_p", top_p)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))):
            raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not (math.isfinite(temperature) and 1e-3 <= temperature <= 1e3):
        raise SeqlmError(f"--temperature must be a number between 0.001 and 1000 (got {temperature}); use --greedy "
                         f"for the most probable token")
    if top_p is not None and not (math.isfinite(top_p) and 0 < top_p <= 1):
        raise SeqlmError(f"--top-p must be in (0, 1] (got {top_p})")
    rng = np.random.default_rng(seed)
    state, prompt_tokens = read_prompt(model, prompt)
    banned = _banned(allow_unk)
    out: list[int] = []
    total = 0.0
    stopped = "max_tokens"
    for _ in range(max_tokens):
        logp = model.next_logprobs(state)
        masked = logp.copy()
        masked[banned] = -np.inf
        if greedy or top_k == 1:
            tok = int(np.argmax(masked))
        else:
            p = sampling_distribution(masked, temperature, top_k, top_p)
            tok = int(rng.choice(len(p), p=p))
        total += float(logp[tok])
        if tok == EOS_ID:
            stopped = "eos"
            break
        out.append(tok)
        state = model.advance(state, tok)
    tokens = model.vocab.decode(out)
    detok = model.vocab.tokenizer.detokenize
    return {
        "prompt": prompt,
        "text": detok(prompt_tokens + tokens),
        "generated": detok(tokens),
        "tokens": len(tokens) + (stopped == "eos"),
        "log_prob": total,
        "log_base": "e",
        "stopped": stopped,
        "seed": seed,
    }


def generate_many(model: LanguageModel, prompt: str = "", num: int = 1, seed: int | None = None, **options) -> list[dict]:
    """``num`` samples continuing ``prompt``: sample ``i`` uses seed ``seed + i`` (the same seed, the same
    samples); ``options`` as :func:`generate`."""
    check_integer(num, "num", 1)
    check_integer(seed, "seed", 0, optional=True)
    return [generate(model, prompt, seed=None if seed is None else seed + i, **options) for i in range(num)]


def beam_search(model: LanguageModel, prompt: str | list[str] = "", beam: int = 4, max_tokens: int = 50, num: int = 1,
                length_penalty: float = 1.0, banned_words=(), prefix: str = "", allow_unk: bool = False) -> list:
    """The ``num`` best continuations of ``prompt`` found by a beam of ``beam`` hypotheses (HF ``generate``'s
    ``num_beams``, ``num_return_sequences``, ``length_penalty``), best first; ``prompt`` a list of prompts: one
    such list per prompt, all searched together (each step of every prompt's beam is one batched step of the
    model, :meth:`LanguageModel.advance_many`), each result what the prompt alone gives.

    A hypothesis ends at ``</s>`` or after ``max_tokens`` tokens.  Finished ones are ranked by their log-prob
    divided by their length (tokens, ``</s>`` included) to the power ``length_penalty`` (0: the plain log-prob;
    above 0 favours longer texts); ``log_prob`` in each result is the model's, untouched.  Constraints: tokens
    of ``banned_words`` are never produced; the output begins with ``prefix`` (its tokens forced, and scored).
    Beam 1 is greedy decoding; with a beam as wide as every sequence the search is exhaustive (tested)."""
    check_model(model, "generate")
    batch = isinstance(prompt, (list, tuple))
    prompts = list(prompt) if batch else [prompt]
    if batch and not prompts:
        raise SeqlmError("no prompts: give one or more")
    for name, value in [("prompt", p) for p in prompts] + [("prefix", prefix)]:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be one str, not {type(value).__name__}")
    check_integer(beam, "beam", 1)
    check_integer(max_tokens, "max_tokens", 1)
    check_integer(num, "num", 1)
    if num > beam:
        raise SeqlmError(f"--num {num} is more than --beam {beam}: a beam returns at most its width")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)) or not math.isfinite(length_penalty):
        raise SeqlmError(f"--length-penalty must be a number (got {length_penalty!r})")
    if isinstance(banned_words, str):
        banned_words = banned_words.split()
    vocab = model.vocab
    banned = _banned(allow_unk) + [vocab.stoi[w] for w in banned_words if w in vocab.text_stoi]
    forced = [int(i) for i in vocab.encode(vocab.tokenizer.tokenize(prefix))]
    if set(forced) & set(banned):
        raise SeqlmError("--prefix holds a token that is banned (or <unk>): change one of them")
    if len(forced) >= max_tokens:
        raise SeqlmError(f"--prefix has {len(forced)} tokens: --max-tokens ({max_tokens}) leaves none to generate")

    def rank(item) -> float:
        logp, tokens, stopped = item
        return logp / (len(tokens) + (stopped == "eos")) ** length_penalty if length_penalty else logp

    searches = []
    for p in prompts:
        state, prompt_tokens = read_prompt(model, p)
        # live: (log-prob, tokens, state); done: (log-prob, tokens, how it stopped)
        searches.append({"prompt": p, "prompt_tokens": prompt_tokens, "live": [(0.0, [], state)], "done": []})
    for step in range(max_tokens):
        grown = []  # (search, log-prob, tokens, state to advance, token): one batched step for all of them
        for search in searches:
            if not search["live"]:
                continue
            candidates = []
            for logp, tokens, st in search["live"]:
                lp = model.next_logprobs(st)
                if step < len(forced):
                    choices = [forced[step]]
                else:
                    masked = lp.copy()
                    masked[banned] = -np.inf
                    choices = [int(i) for i in np.argsort(-masked, kind="stable")[:beam] if np.isfinite(masked[i])]
                candidates += [(logp + float(lp[c]), tokens, st, c) for c in choices]
            candidates.sort(key=lambda c: -c[0])
            kept = 0
            search["live"] = []
            for logp, tokens, st, c in candidates:
                if c == EOS_ID:
                    search["done"].append((logp, tokens, "eos"))
                else:
                    grown.append((search, logp, tokens + [c], st, c))
                    kept += 1
                if kept == beam:
                    break
        if step + 1 < max_tokens and grown:
            states = model.advance_many([g[3] for g in grown], [g[4] for g in grown])
        else:
            states = [g[3] for g in grown]  # the last step: no token is read after it
        for (search, logp, tokens, _, _), st in zip(grown, states):
            search["live"].append((logp, tokens, st))
        for search in searches:
            live, done = search["live"], search["done"]
            # stop once no live hypothesis can still beat the worst of the best ``num`` finished ones (with no
            # length penalty a log-prob only falls)
            if live and length_penalty == 0 and len(done) >= num and \
                    max(x[0] for x in live) < sorted(x[0] for x in done)[-num]:
                search["live"] = []
                search["stopped_early"] = True
        if not any(search["live"] for search in searches):
            break
    detok = vocab.tokenizer.detokenize
    results = []
    for search in searches:
        done = search["done"]
        if not search.get("stopped_early"):
            done = done + [(logp, tokens, "max_tokens") for logp, tokens, _ in search["live"]]
        out = []
        for logp, tokens, stopped in sorted(done, key=lambda x: -rank(x))[:num]:
            words = vocab.decode(tokens)
            out.append({"prompt": search["prompt"], "text": detok(search["prompt_tokens"] + words),
                        "generated": detok(words), "tokens": len(tokens) + (stopped == "eos"), "log_prob": logp,
                        "log_base": "e", "stopped": stopped, "score": rank((logp, tokens, stopped)), "beam": beam})
        results.append(out)
    return results if batch else results[0]
