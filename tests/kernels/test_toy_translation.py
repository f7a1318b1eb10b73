"""Tests for the synthetic English -> French-like grammar in kernels/toy_translation.py.

Expected translations are written out by hand; the lexicon check re-derives every
target word from the source word it claims to translate, using only the module's
word tables (not its translation code).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import toy_translation as toy

FAST = settings(max_examples=40, deadline=None)


def forms(word: str) -> set[str]:
    """Every French form the English ``word`` may take."""
    tables = (toy.DETERMINERS, toy.ADJECTIVES)
    for table in tables:
        if word in table:
            return set(table[word])
    if word in toy.NOUNS:
        return {toy.NOUNS[word][0]}
    return {{**toy.TRANSITIVE, **toy.INTRANSITIVE, **toy.CONJUNCTION}[word]}


def noun_phrases(pair: toy.Pair):
    """(start, end) of each source noun phrase, found by the determiners."""
    starts = [k for k, w in enumerate(pair.source) if w in toy.DETERMINERS]
    for start in starts:
        end = start + 1
        while pair.source[end] not in toy.NOUNS:
            end += 1
        yield start, end + 1


# --------------------------------------------------------------------------
# translate
# --------------------------------------------------------------------------


@pytest.mark.parametrize("source, target, alignment", [
    ("the cat sleeps", "le chat dort", (0, 1, 2)),
    ("a door falls", "une porte tombe", (0, 1, 2)),
    ("the long red car sleeps", "la voiture rouge longue dort", (0, 3, 2, 1, 4)),
    ("a small dog sees the white house", "un chien petit voit la maison blanche", (0, 2, 1, 3, 4, 6, 5)),
    ("the girl waits and a big new garden falls",
     "la fille attend et un jardin nouveau grand tombe", (0, 1, 2, 3, 4, 7, 6, 5, 8)),
])
def test_translate_by_hand(source, target, alignment):
    pair = toy.translate(source.split())
    assert pair.target == tuple(target.split())
    assert pair.alignment == alignment


@pytest.mark.parametrize("source, where", [
    ("cat the sleeps", "determiner at position 0"),
    ("the cat", "verb at position 2"),
    ("the cat sleeps the dog", "'and' or the end at position 3"),
    ("the cat sees", "determiner at position 3"),
    ("the red small big cat sleeps", "noun at position 3"),
    ("the cat sleeps and", "determiner at position 4"),
    ("the unicorn sleeps", "noun at position 1"),
    ("", "determiner at position 0"),
])
def test_translate_rejects_ungrammatical(source, where):
    with pytest.raises(ValueError, match=where):
        toy.translate(source.split())


@pytest.mark.parametrize("example", [toy.SHORT_EXAMPLE, toy.LONG_EXAMPLE])
def test_examples_are_grammatical_and_reorder(example):
    pair = toy.translate(example)
    assert pair.alignment != tuple(range(len(example)))


# --------------------------------------------------------------------------
# generate: invariants over seeds
# --------------------------------------------------------------------------


@FAST
@given(seed=st.integers(0, 2**32 - 1), max_len=st.integers(toy.MIN_LENGTH, 40))
def test_generated_pairs_are_consistent(seed, max_len):
    for pair in toy.generate(20, seed=seed, max_len=max_len):
        assert toy.MIN_LENGTH <= len(pair.source) <= max_len
        assert len(pair.target) == len(pair.source)
        assert sorted(pair.alignment) == list(range(len(pair.source)))
        assert toy.translate(pair.source) == pair
        for i, j in enumerate(pair.alignment):
            assert pair.target[i] in forms(pair.source[j])
        # Off the identity only inside noun phrases, and only when adjectives are there.
        for start, end in noun_phrases(pair):
            inverted = pair.alignment[start:end] != tuple(range(start, end))
            assert inverted == (end - start > 2)
        outside = set(range(len(pair.source))) - {k for a, b in noun_phrases(pair) for k in range(a, b)}
        assert all(pair.alignment[k] == k for k in outside)


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_articles_and_adjectives_agree_with_their_noun(seed):
    for pair in toy.generate(20, seed=seed):
        for start, end in noun_phrases(pair):
            gender = toy.NOUNS[pair.source[end - 1]][1]
            g = 0 if gender == "m" else 1
            french = pair.target[start:end]
            assert french[0] == toy.DETERMINERS[pair.source[start]][g]
            assert french[2:] == tuple(toy.ADJECTIVES[a][g] for a in reversed(pair.source[start + 1:end - 1]))


def test_generate_is_deterministic_and_seeded():
    assert toy.generate(50, seed=3) == toy.generate(50, seed=3)
    assert toy.generate(50, seed=3) != toy.generate(50, seed=4)


def test_lengths_span_the_range():
    lengths = np.array([len(p.source) for p in toy.generate(2_000, seed=0, min_len=5, max_len=12)])
    assert set(lengths) == set(range(5, 13))
    counts = np.bincount(lengths)[5:]
    assert counts.min() > 0.6 * counts.mean()  # uniform over lengths, within sampling noise


def test_corpus_has_real_inversions():
    pairs = toy.generate(500, seed=0)
    moved = sum(i != j for p in pairs for i, j in enumerate(p.alignment))
    words = sum(len(p.source) for p in pairs)
    assert 0.1 < moved / words < 0.5


@pytest.mark.parametrize("kwargs, name", [
    ({"n": -1}, "n"), ({"n": 1, "min_len": 2}, "min_len"), ({"n": 1, "min_len": 9, "max_len": 8}, "min_len"),
])
def test_generate_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        toy.generate(seed=0, **kwargs)


# --------------------------------------------------------------------------
# Vocab
# --------------------------------------------------------------------------


@pytest.mark.parametrize("vocab", [toy.source_vocab(), toy.target_vocab()])
def test_vocab_specials_and_round_trip(vocab):
    assert vocab.tokens[:3] == (toy.PAD, toy.BOS, toy.EOS)
    words = vocab.tokens[3:]
    assert vocab.decode(vocab.encode(words)) == words
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.encode(["zebra"])


def test_vocabularies_cover_the_generated_text():
    pairs = toy.generate(300, seed=1)
    assert {w for p in pairs for w in p.source} <= set(toy.source_vocab().tokens)
    assert {w for p in pairs for w in p.target} <= set(toy.target_vocab().tokens)
