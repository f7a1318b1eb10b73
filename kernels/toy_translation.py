"""A synthetic English -> French-like translation task that needs reordering.

Part 1 measures the bottleneck thesis of Bahdanau, Cho & Bengio (arXiv:1409.0473) on
data generated here, so the language is small, deterministic and downloaded from
nowhere. It keeps the two features of English -> French that make the paper's Figure 3
more than a diagonal:

* **Adjective-noun inversion.** Adjectives follow the noun, in mirror order:
  ``the long red car`` -> ``la voiture rouge longue`` (compare the paper's
  ``European Economic Area`` -> ``zone économique européenne``).
* **Gender agreement.** Articles and adjectives take the gender of their noun, which in
  the source can sit up to three words later: ``the`` is ``le`` or ``la``, ``a`` is
  ``un`` or ``une``, ``small`` is ``petit`` or ``petite``.

Grammar (every clause ends in a verb, clauses joined by ``and``)::

    sentence = clause ("and" clause)*
    clause   = NP intransitive_verb | NP transitive_verb NP
    NP       = determiner adjective{0,2} noun

Invariants: the target is a function of the source (``translate``); source and target
have the same number of tokens; target token ``i`` translates source token
``alignment[i]``, and ``alignment`` is a permutation that differs from the identity
only inside noun phrases with adjectives.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = [
    "LONG_EXAMPLE",
    "MAX_ADJECTIVES",
    "SHORT_EXAMPLE",
    "Pair",
    "Vocab",
    "generate",
    "source_vocab",
    "target_vocab",
    "translate",
]

# noun -> (French noun, gender): "m" or "f"
NOUNS = {
    "cat": ("chat", "m"), "dog": ("chien", "m"), "book": ("livre", "m"),
    "bird": ("pigeon", "m"), "boy": ("garçon", "m"), "garden": ("jardin", "m"),
    "car": ("voiture", "f"), "house": ("maison", "f"), "table": ("table", "f"),
    "flower": ("fleur", "f"), "girl": ("fille", "f"), "door": ("porte", "f"),
}
# adjective -> (masculine, feminine)
ADJECTIVES = {
    "red": ("rouge", "rouge"), "small": ("petit", "petite"), "big": ("grand", "grande"),
    "green": ("vert", "verte"), "black": ("noir", "noire"), "long": ("long", "longue"),
    "new": ("nouveau", "nouvelle"), "white": ("blanc", "blanche"),
}
# determiner -> (masculine, feminine)
DETERMINERS = {"the": ("le", "la"), "a": ("un", "une")}
TRANSITIVE = {
    "sees": "voit", "likes": "aime", "takes": "prend", "follows": "suit",
    "finds": "trouve", "paints": "peint",
}
INTRANSITIVE = {"sleeps": "dort", "waits": "attend", "falls": "tombe"}
CONJUNCTION = {"and": "et"}

MAX_ADJECTIVES = 2  # per noun phrase: enough for a mirrored pair, as in Figure 3
NP_LENGTHS = range(2, 2 + MAX_ADJECTIVES + 1)  # determiner + adjectives + noun
CLAUSE_LENGTHS = range(min(NP_LENGTHS) + 1, 2 * max(NP_LENGTHS) + 2)  # NP V ... NP V NP
MIN_LENGTH = min(CLAUSE_LENGTHS)  # the shortest sentence: "the cat sleeps"

# Specials, the same ids in both vocabularies.
PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIALS = (PAD, BOS, EOS)

# Fixed sentences for the alignment figure: a short one, and a long one with two
# mirrored adjective pairs and a look-ahead for gender in every noun phrase.
SHORT_EXAMPLE = ("the", "small", "girl", "sees", "a", "red", "car")
LONG_EXAMPLE = (
    "the", "long", "black", "cat", "follows", "a", "small", "bird", "and",
    "the", "girl", "paints", "the", "new", "white", "door",
)


@dataclass(frozen=True)
class Vocab:
    """Tokens <-> ids. Ids 0, 1, 2 are PAD, BOS, EOS in every vocabulary."""

    tokens: tuple[str, ...]  # id -> token, specials first

    def __post_init__(self):
        assert self.tokens[: len(SPECIALS)] == SPECIALS
        assert len(set(self.tokens)) == len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        return _index(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, words) -> list[int]:
        index = self.index
        unknown = [w for w in words if w not in index]
        if unknown:
            raise ValueError(f"words {unknown} are not in the vocabulary")
        return [index[w] for w in words]

    def decode(self, ids) -> tuple[str, ...]:
        return tuple(self.tokens[i] for i in ids)


@cache
def _index(tokens: tuple[str, ...]) -> dict[str, int]:
    return {t: i for i, t in enumerate(tokens)}


def source_vocab() -> Vocab:
    words = [*DETERMINERS, *ADJECTIVES, *NOUNS, *TRANSITIVE, *INTRANSITIVE, *CONJUNCTION]
    return Vocab(SPECIALS + tuple(words))


def target_vocab() -> Vocab:
    words = [w for pair in DETERMINERS.values() for w in pair]
    words += [w for pair in ADJECTIVES.values() for w in pair]
    words += [french for french, _ in NOUNS.values()]
    words += [*TRANSITIVE.values(), *INTRANSITIVE.values(), *CONJUNCTION.values()]
    return Vocab(SPECIALS + tuple(dict.fromkeys(words)))  # "rouge" is both genders


@dataclass(frozen=True)
class Pair:
    """One sentence and its translation."""

    source: tuple[str, ...]  # English words, x_1 .. x_Tx
    target: tuple[str, ...]  # French words, y_1 .. y_Ty (T_y == T_x), no EOS
    alignment: tuple[int, ...]  # target position i translates source position alignment[i]


def _translate_np(words: tuple[str, ...], start: int) -> tuple[list[str], list[int]]:
    """det adj* noun -> det noun adj* (adjectives mirrored), agreeing in gender."""
    det, *adjectives, noun = words
    french_noun, gender = NOUNS[noun]
    g = 0 if gender == "m" else 1
    out = [DETERMINERS[det][g], french_noun] + [ADJECTIVES[a][g] for a in reversed(adjectives)]
    last = start + len(words) - 1
    align = [start, last] + [last - 1 - k for k in range(len(adjectives))]
    return out, align


def _parse_np(words: tuple[str, ...], pos: int) -> int:
    """End (exclusive) of the noun phrase starting at ``pos``; ValueError if there is none."""
    if pos >= len(words) or words[pos] not in DETERMINERS:
        raise ValueError(f"source: expected a determiner at position {pos}")
    end = pos + 1
    while end < len(words) and words[end] in ADJECTIVES and end - pos <= MAX_ADJECTIVES:
        end += 1
    if end >= len(words) or words[end] not in NOUNS:
        raise ValueError(f"source: expected a noun at position {end}")
    return end + 1


def translate(source) -> Pair:
    """The one correct translation of a grammatical source sentence.

    Raises ValueError naming the first position where ``source`` leaves the grammar.
    """
    words = tuple(source)
    target: list[str] = []
    alignment: list[int] = []

    def noun_phrase(pos: int) -> int:
        end = _parse_np(words, pos)
        out, align = _translate_np(words[pos:end], pos)
        target.extend(out)
        alignment.extend(align)
        return end

    def word(pos: int, table: dict[str, str]) -> None:
        target.append(table[words[pos]])
        alignment.append(pos)

    pos = 0
    while True:
        pos = noun_phrase(pos)
        if pos < len(words) and words[pos] in TRANSITIVE:
            word(pos, TRANSITIVE)
            pos = noun_phrase(pos + 1)
        elif pos < len(words) and words[pos] in INTRANSITIVE:
            word(pos, INTRANSITIVE)
            pos += 1
        else:
            raise ValueError(f"source: expected a verb at position {pos}")
        if pos == len(words):
            break
        if words[pos] not in CONJUNCTION:
            raise ValueError(f"source: expected 'and' or the end at position {pos}")
        word(pos, CONJUNCTION)
        pos += 1
    assert sorted(alignment) == list(range(len(words)))
    return Pair(words, tuple(target), tuple(alignment))


def _noun_phrase(rng: np.random.Generator, n_adjectives: int) -> list[str]:
    det = list(DETERMINERS)[rng.integers(len(DETERMINERS))]
    adjs = [list(ADJECTIVES)[k] for k in rng.permutation(len(ADJECTIVES))[:n_adjectives]]
    noun = list(NOUNS)[rng.integers(len(NOUNS))]
    return [det, *adjs, noun]


def _clause(rng: np.random.Generator, length: int) -> list[str]:
    """A clause of exactly ``length`` words, its shape drawn uniformly among those that fit."""
    shapes = [(a, None) for a in range(MAX_ADJECTIVES + 1) if a + 3 == length]
    shapes += [(a, b) for a in range(MAX_ADJECTIVES + 1) for b in range(MAX_ADJECTIVES + 1)
               if a + b + 5 == length]
    assert shapes, length
    subject_adjs, object_adjs = shapes[rng.integers(len(shapes))]
    if object_adjs is None:
        verb = list(INTRANSITIVE)[rng.integers(len(INTRANSITIVE))]
        return _noun_phrase(rng, subject_adjs) + [verb]
    verb = list(TRANSITIVE)[rng.integers(len(TRANSITIVE))]
    return _noun_phrase(rng, subject_adjs) + [verb] + _noun_phrase(rng, object_adjs)


def _sentence(rng: np.random.Generator, length: int) -> list[str]:
    """Clauses joined by "and", exactly ``length`` words.

    Each clause length is drawn among those that leave a remainder that is either zero
    or fits "and" plus at least one more clause.
    """
    words: list[str] = []
    remaining = length
    while remaining:
        fits = [n for n in CLAUSE_LENGTHS
                if n == remaining or remaining - n >= 1 + MIN_LENGTH]
        assert fits, remaining
        n = fits[rng.integers(len(fits))]
        words += _clause(rng, n)
        remaining -= n
        if remaining:
            words.append("and")
            remaining -= 1
    return words


def generate(n: int, *, seed: int, min_len: int = MIN_LENGTH, max_len: int = 30) -> list[Pair]:
    """``n`` pairs with source lengths uniform over ``min_len..max_len``, deterministic in ``seed``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not MIN_LENGTH <= min_len <= max_len:
        raise ValueError(f"need {MIN_LENGTH} <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    return [translate(_sentence(rng, int(length))) for length in lengths]
