"""Generated corpora for the demo and the tests: no download, fully determined by a seed.

* :func:`english`: sentences from a small probabilistic context-free grammar of English-like text
  with number agreement ("the students opened their books", "there is a cat on the mat").
* :func:`dna`: sequences from an order-``k`` Markov source over {A, C, G, T} whose transition table is
  drawn from a Dirichlet; :func:`dna_entropy` gives the source's exact entropy rate, the floor that no
  model can beat, so the demo shows how close each model order gets.
"""

from __future__ import annotations

import itertools

import numpy as np

# Each non-terminal maps to weighted alternatives; a string starting with an upper-case letter and
# present in the table is a non-terminal, anything else is a word.
GRAMMAR: dict[str, list[tuple[float, list[str]]]] = {
    "S": [(4, ["NPs", "VPs"]), (4, ["NPp", "VPp"]), (1.5, ["there", "is", "NPis", "PP"]),
          (1, ["there", "are", "NPip", "PP"]), (1, ["Adv", ",", "NPs", "VPs"])],
    "NPs": [(5, ["the", "Ns"]), (2, ["the", "Adj", "Ns"]), (1, ["a", "Ns"]), (1, ["this", "Ns"]),
            (1, ["the", "Ns", "PP"])],
    "NPp": [(5, ["the", "Np"]), (2, ["the", "Adj", "Np"]), (1, ["some", "Np"]), (1, ["many", "Np"]),
            (1, ["the", "Np", "PP"])],
    "NPis": [(4, ["a", "Ns"]), (2, ["a", "Adj", "Ns"]), (1, ["an", "Adjv", "Ns"])],
    "NPip": [(3, ["some", "Np"]), (2, ["many", "Np"]), (1, ["two", "Np"]), (1, ["no", "Np"])],
    "NPo": [(3, ["the", "Ns"]), (3, ["the", "Np"]), (1, ["a", "Ns"]), (1, ["the", "Adj", "Ns"])],
    "PP": [(1, ["P", "NPo"])],
    "VPs": [(3, ["Vt", "NPo"]), (2, ["Vi"]), (1, ["Vi", "PP"]), (2, ["opened", "PossS", "Thing"]),
            (1, ["is", "Adj"]), (1, ["Vt", "NPo", "PP"])],
    "VPp": [(3, ["Vt", "NPo"]), (2, ["Vip"]), (1, ["Vip", "PP"]), (3, ["opened", "their", "Thing"]),
            (1, ["are", "Adj"]), (1, ["Vt", "NPo", "PP"])],
    "PossS": [(1, ["his"]), (1, ["her"])],
    "Thing": [(6, ["books"]), (3, ["laptops"]), (2, ["notebooks"]), (2, ["exams"]), (1, ["windows"]),
              (1, ["doors"]), (1, ["letters"])],
    "Ns": [(3, ["student"]), (2, ["teacher"]), (2, ["dog"]), (2, ["cat"]), (1, ["child"]), (1, ["city"]),
           (1, ["market"]), (1, ["farmer"]), (1, ["bird"]), (1, ["doctor"]), (1, ["river"])],
    "Np": [(3, ["students"]), (2, ["teachers"]), (2, ["dogs"]), (2, ["cats"]), (1, ["children"]),
           (1, ["cities"]), (1, ["markets"]), (1, ["farmers"]), (1, ["birds"]), (1, ["doctors"])],
    "Adj": [(2, ["old"]), (2, ["small"]), (1, ["happy"]), (1, ["busy"]), (1, ["quiet"]), (1, ["clever"])],
    "Adjv": [(2, ["old"]), (1, ["angry"]), (1, ["eager"])],
    "Vt": [(2, ["saw"]), (2, ["liked"]), (1, ["found"]), (1, ["followed"]), (1, ["helped"]), (1, ["read"])],
    "Vi": [(2, ["sleeps"]), (2, ["runs"]), (1, ["sings"]), (1, ["waits"]), (1, ["works"])],
    "Vip": [(2, ["sleep"]), (2, ["run"]), (1, ["sing"]), (1, ["wait"]), (1, ["work"])],
    "P": [(3, ["on"]), (2, ["in"]), (2, ["near"]), (1, ["with"]), (1, ["under"])],
    "Adv": [(1, ["today"]), (1, ["yesterday"]), (1, ["suddenly"]), (1, ["again"])],
}


def _expand(symbol: str, rng: np.random.Generator, out: list[str]) -> None:
    rules = GRAMMAR.get(symbol)
    if rules is None:
        out.append(symbol)
        return
    weights = np.array([w for w, _ in rules], dtype=float)
    _, rhs = rules[rng.choice(len(rules), p=weights / weights.sum())]
    for s in rhs:
        _expand(s, rng, out)


def english(n_lines: int, seed: int = 0) -> list[str]:
    """``n_lines`` sentences, lower case, tokens separated by spaces."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_lines):
        out: list[str] = []
        _expand("S", rng, out)
        lines.append(" ".join(out))
    return lines


BASES = "ACGT"


def dna_source(order: int = 3, seed: int = 0, concentration: float = 0.3) -> np.ndarray:
    """Transition table (4**order, 4): row = the previous ``order`` bases (base-4 number)."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(4, concentration), size=4 ** order)


def dna(n_lines: int, length: int, order: int = 3, seed: int = 0, source_seed: int = 0) -> list[str]:
    """``n_lines`` sequences of ``length`` bases from the order-``order`` source (fixed by ``source_seed``)."""
    table = dna_source(order, source_seed)
    rng = np.random.default_rng(seed)
    lines = []
    mod = 4 ** order
    cum = np.cumsum(table, axis=1)
    for _ in range(n_lines):
        state = int(rng.integers(mod))
        u = rng.random(length)
        seq = np.empty(length, dtype=np.int64)
        for i in range(length):
            b = int(np.searchsorted(cum[state], u[i] * cum[state, -1]))
            seq[i] = min(b, 3)
            state = (state * 4 + seq[i]) % mod
        lines.append("".join(BASES[b] for b in seq))
    return lines


def dna_entropy(order: int = 3, source_seed: int = 0) -> float:
    """Entropy rate of the source in nats per base (stationary distribution of its state chain)."""
    table = dna_source(order, source_seed)
    mod = 4 ** order
    trans = np.zeros((mod, mod))
    for s, b in itertools.product(range(mod), range(4)):
        trans[s, (s * 4 + b) % mod] += table[s, b]
    vals, vecs = np.linalg.eig(trans.T)
    pi = np.real(vecs[:, np.argmin(np.abs(vals - 1))])
    pi = pi / pi.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nansum(table * np.log(table), axis=1)
    return float(pi @ h)
