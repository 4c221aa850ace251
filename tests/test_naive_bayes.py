"""The n-gram score layer (layers/ngram_scores.py), fitted by naive Bayes (fitting/ngrams.py), against a direct count of its equations,
and its NBSVM table against Wang & Manning's equations over scikit-learn's own n-gram features."""

import math
from collections import Counter

import keras
import numpy as np
import pytest
from keras import ops

from fitting.ngrams import cross_fit_folds, fit_naive_bayes, fit_nbsvm
from layers.ngram_scores import NgramScores

RNG = np.random.default_rng(3)
VOCABULARY = 9  # ids 2..8 are words (0 padding, 1 OOV)
CLASSES = [1, 2]  # label id 0 is the classifier's OOV label
TEXTS = [list(RNG.integers(2, VOCABULARY, size=RNG.integers(2, 9))) for _ in range(40)]
LABELS = [int(x) for x in RNG.choice(CLASSES, size=len(TEXTS))]


def ngrams(text, max_n):
    return {tuple(text[i : i + n]) for n in range(1, max_n + 1) for i in range(len(text) - n + 1)}


def reference_scores(train_texts, train_labels, text, max_n, alpha=1.0):
    """log P(c) + Σ log θ_c(g) over the text's distinct n-grams seen in training, per class."""
    holding = {c: Counter() for c in CLASSES}
    for t, label in zip(train_texts, train_labels):
        holding[label].update(ngrams(t, max_n))
    seen = set().union(*holding.values())
    scores = []
    for c in CLASSES:
        total = sum(holding[c].values())
        score = math.log(train_labels.count(c) / len(train_labels))
        for g in ngrams(text, max_n) & seen:
            score += math.log((holding[c][g] + alpha) / (total + alpha * len(seen)))
        scores.append(score)
    return np.array(scores)


def padded(texts):
    batch = np.zeros((len(texts), max(len(t) for t in texts)), dtype="int32")
    for row, t in enumerate(texts):
        batch[row, : len(t)] = t
    return batch


def margins(scores):
    """What a softmax sees: each class's score minus the first class's."""
    return scores - scores[..., :1]


@pytest.mark.parametrize("max_n", [1, 2, 3])
def test_layer_scores_equal_counted_naive_bayes_on_a_padded_batch(max_n):
    layer, _ = fit_naive_bayes(TEXTS, LABELS, num_labels=3, classes=CLASSES, max_n=max_n, base=VOCABULARY)
    new = [[2, 3, 2, 3, 1, 4], [5, 5, 5], [8, 7, 6, 5, 4, 3, 2, 1], [1]]  # repeats, OOV
    out = keras.ops.convert_to_numpy(layer(padded(new)))
    assert out.shape == (4, 3)
    np.testing.assert_array_equal(out[:, 0], 0.0)  # the OOV label gets no score
    expected = np.stack([reference_scores(TEXTS, LABELS, t, max_n) for t in new])
    np.testing.assert_allclose(margins(out[:, 1:]), margins(expected), rtol=1e-5, atol=1e-4)


def test_leave_one_out_scores_are_those_of_a_model_fitted_without_the_text():
    _, left_out = fit_naive_bayes(TEXTS, LABELS, num_labels=3, classes=CLASSES, max_n=2, base=VOCABULARY)
    for i in (0, 7, 21):
        others, other_labels = TEXTS[:i] + TEXTS[i + 1 :], LABELS[:i] + LABELS[i + 1 :]
        expected = reference_scores(others, other_labels, TEXTS[i], 2)
        np.testing.assert_allclose(margins(left_out[i, 1:]), margins(expected), rtol=1e-9, atol=1e-9)
    # Without its own counts a text looks less sure of its label than the full model says.
    full_layer, _ = fit_naive_bayes(TEXTS, LABELS, num_labels=3, classes=CLASSES, max_n=2, base=VOCABULARY)
    full = keras.ops.convert_to_numpy(full_layer(padded(TEXTS)))
    sign = np.where(np.array(LABELS) == 2, 1.0, -1.0)
    assert np.mean(sign * (full[:, 2] - full[:, 1])) > np.mean(sign * (left_out[:, 2] - left_out[:, 1]))


def test_layer_survives_a_keras_save_and_load(tmp_path):
    layer, _ = fit_naive_bayes(TEXTS, LABELS, num_labels=3, classes=CLASSES, max_n=2, base=VOCABULARY)
    words = keras.Input((None,), dtype="int32")
    model = keras.Model(words, layer(words))
    model.save(tmp_path / "nb.keras")
    loaded = keras.saving.load_model(tmp_path / "nb.keras")
    batch = padded(TEXTS[:5])
    np.testing.assert_array_equal(loaded.predict_on_batch(batch), model.predict_on_batch(batch))
    config = loaded.layers[-1].get_config()
    assert (config["num_labels"], config["classes"], config["max_n"], config["base"]) == (3, CLASSES, 2, VOCABULARY)


def test_arguments_out_of_range_are_refused():
    with pytest.raises(ValueError, match="max_n must be in 1..3, got 4"):
        fit_naive_bayes(TEXTS, LABELS, num_labels=3, classes=CLASSES, max_n=4)
    with pytest.raises(ValueError, match="too large"):
        fit_naive_bayes(TEXTS, LABELS, num_labels=3, classes=CLASSES, max_n=3, base=2**21)
    with pytest.raises(ValueError, match="sorted and distinct"):
        NgramScores(3, CLASSES, 1, VOCABULARY, 2, name="nb").set_table([5, 3], np.zeros((2, 2)), np.zeros(2))


def test_keys_past_int32_are_refused_only_where_the_backend_computes_int64_in_int32():
    # Bigrams of a 50,000-word vocabulary reach 2.5e9 > 2**31: fine on TensorFlow and PyTorch,
    # a clear error on JAX without its x64 flag (where the keys would silently wrap around).
    int32_only = False
    if keras.backend.backend() == "jax":
        import jax

        int32_only = not jax.config.jax_enable_x64
    if int32_only:
        with pytest.raises(ValueError, match="JAX_ENABLE_X64=1"):
            NgramScores(3, CLASSES, 2, 50_000, 4)
    else:
        layer = NgramScores(3, CLASSES, 2, 50_000, 2)
        layer.build((None, None))
        layer.set_table([7, 49_999 * 50_000 + 49_999], np.zeros((2, len(CLASSES))), np.zeros(len(CLASSES)))
        assert keras.backend.standardize_dtype(layer.keys.dtype) == "int64"
        assert int(ops.convert_to_numpy(layer.keys)[1]) == 49_999 * 50_000 + 49_999
    NgramScores(3, CLASSES, 2, 46_000, 4)  # 46,000² < 2**31: accepted on every backend


def reference_nbsvm(train_texts, train_labels, texts, max_n, positive, C=1.0, beta=0.25, alpha=1.0):
    """Wang & Manning's NBSVM, written from the paper over CountVectorizer's binary n-grams:
    the decision value for class `positive` against the others, for each of `texts`."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.svm import LinearSVC

    def analyzer(text):
        return [" ".join(map(str, g)) for g in ngrams(text, max_n)]

    vectorizer = CountVectorizer(analyzer=analyzer, binary=True)
    x = vectorizer.fit_transform(train_texts).toarray().astype(float)
    y = np.array(train_labels) == positive
    p, q = alpha + x[y].sum(axis=0), alpha + x[~y].sum(axis=0)
    r = np.log(p / p.sum()) - np.log(q / q.sum())
    svm = LinearSVC(C=C, max_iter=10_000).fit(x * r, y)
    w = (1 - beta) * np.abs(svm.coef_[0]).mean() + beta * svm.coef_[0]
    return (vectorizer.transform(texts).toarray() * r) @ w + beta * svm.intercept_[0]


@pytest.mark.parametrize("max_n", [1, 2])
def test_nbsvm_layer_scores_equal_the_papers_equations(max_n):
    layer, _ = fit_nbsvm(TEXTS, LABELS, num_labels=3, classes=CLASSES, max_n=max_n, base=VOCABULARY)
    new = [[2, 3, 2, 3, 1, 4], [5, 5, 5], [8, 7, 6, 5, 4, 3, 2, 1], [1]]
    out = keras.ops.convert_to_numpy(layer(padded(new)))
    np.testing.assert_array_equal(out[:, 0], 0.0)
    expected = reference_nbsvm(TEXTS, LABELS, new, max_n, positive=2)
    # two classes: half the decision value for the second, minus half for the first
    np.testing.assert_allclose(out[:, 2] - out[:, 1], expected, rtol=1e-4, atol=1e-4)
    assert np.std(expected) > 0.1  # the texts are told apart: the comparison has something to compare


def test_nbsvm_one_against_the_others_for_three_classes():
    classes = [1, 2, 3]
    labels = [int(x) for x in np.random.default_rng(5).choice(classes, size=len(TEXTS))]
    layer, _ = fit_nbsvm(TEXTS, labels, num_labels=4, classes=classes, max_n=2, base=VOCABULARY)
    out = keras.ops.convert_to_numpy(layer(padded(TEXTS[:6])))
    for column, c in enumerate(classes, start=1):
        np.testing.assert_allclose(
            out[:, column], reference_nbsvm(TEXTS, labels, TEXTS[:6], 2, c), rtol=1e-4, atol=1e-4
        )


def test_nbsvm_training_scores_come_from_models_fitted_without_the_text():
    layer, crossed = fit_nbsvm(TEXTS, LABELS, num_labels=3, classes=CLASSES, max_n=2, base=VOCABULARY, folds=5, seed=0)
    fold = cross_fit_folds(LABELS, 5, seed=0)
    held_out = np.flatnonzero(fold == 2)
    others = [i for i in range(len(TEXTS)) if fold[i] != 2]
    expected = reference_nbsvm(
        [TEXTS[i] for i in others], [LABELS[i] for i in others], [TEXTS[i] for i in held_out], 2, 2
    )
    np.testing.assert_allclose(crossed[held_out, 2] - crossed[held_out, 1], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(crossed[:, 0], 0.0)
    # The full model is surer of its own training texts than the cross-fitted scores are.
    full = keras.ops.convert_to_numpy(layer(padded(TEXTS)))
    sign = np.where(np.array(LABELS) == 2, 1.0, -1.0)
    assert np.mean(sign * (full[:, 2] - full[:, 1])) > np.mean(sign * (crossed[:, 2] - crossed[:, 1]))


def test_cross_fit_folds_deal_each_class_evenly_and_refuse_a_lone_text():
    labels = [1] * 7 + [2] * 12 + [3] * 2
    fold = cross_fit_folds(labels, 5, seed=1)
    for label, size in ((1, 7), (2, 12), (3, 2)):
        per_fold = np.bincount(fold[np.array(labels) == label], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1 and per_fold.sum() == size
    with pytest.raises(ValueError, match="label id 3 has 1 training text"):
        cross_fit_folds([1, 1, 2, 2, 3], 5, seed=0)


# Character n-grams ------------------------------------------------------------------------

WORDS = ["gorgeous", "witty", "dull", "witless", "a", "movie", "plot", "café", "it's", "!", "un-funny", "seductive"]
WORD_TEXTS = [list(RNG.choice(WORDS, size=RNG.integers(1, 7))) for _ in range(40)]
WORD_LABELS = [2 if ("gorgeous" in t or "witty" in t) and "dull" not in t else 1 for t in WORD_TEXTS]


def char_rows(texts):
    """The texts' words as character ids, padded to one batch (batch, words, MAX_CHARS)."""
    from pipelines.text import character_id_rows

    rows = character_id_rows(texts, 20)
    batch = np.zeros((len(rows), max(len(r) for r in rows), 20), dtype="int32")
    for i, r in enumerate(rows):
        batch[i, : len(r)] = r
    return rows, batch


def test_character_ngrams_are_scikit_learns_char_wb_ngrams():
    from sklearn.feature_extraction.text import CountVectorizer

    from layers.ngram_scores import text_ngram_keys
    from pipelines.text import ALPHABET_SIZE

    base = ALPHABET_SIZE + 1
    analyzer = CountVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False).build_analyzer()

    def decoded(key):
        ids = []
        while key:
            key, digit = divmod(key, base)
            ids.append(digit)
        return "".join(" " if i == base - 1 else chr(i - 1) for i in reversed(ids))

    rows, _ = char_rows(WORD_TEXTS)
    for text, keys in zip(WORD_TEXTS, text_ngram_keys(rows, "chars", 2, 5, base)):
        assert sorted(decoded(k) for k in keys) == sorted(set(analyzer(" ".join(text))))


def test_character_nbsvm_layer_scores_equal_the_papers_equations_over_char_wb_features():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.svm import LinearSVC

    from pipelines.text import ALPHABET_SIZE

    rows, _ = char_rows(WORD_TEXTS)
    layer, _ = fit_nbsvm(
        rows, WORD_LABELS, num_labels=3, classes=CLASSES, max_n=5, min_n=2, base=ALPHABET_SIZE + 1, unit="chars"
    )  # fmt: skip
    new = [["a", "gorgeous", "café", "gorgeous"], ["dull"], ["witless", "un-funny", "plot", "!", "movie"], ["unseen"]]
    out = keras.ops.convert_to_numpy(layer(char_rows(new)[1]))  # padded: words and characters
    # the paper's equations over scikit-learn's char_wb features
    vectorizer = CountVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False, binary=True)
    x = vectorizer.fit_transform([" ".join(t) for t in WORD_TEXTS]).toarray().astype(float)
    y = np.array(WORD_LABELS) == 2
    p, q = 1 + x[y].sum(axis=0), 1 + x[~y].sum(axis=0)
    r = np.log(p / p.sum()) - np.log(q / q.sum())
    svm = LinearSVC(C=1.0, max_iter=10_000).fit(x * r, y)
    w = 0.75 * np.abs(svm.coef_[0]).mean() + 0.25 * svm.coef_[0]
    expected = (vectorizer.transform([" ".join(t) for t in new]).toarray() * r) @ w + 0.25 * svm.intercept_[0]
    np.testing.assert_allclose(out[:, 2] - out[:, 1], expected, rtol=1e-4, atol=1e-4)
    assert np.std(expected) > 0.1


def test_character_layer_survives_saving_and_refuses_orders_it_cannot_key(tmp_path):
    from pipelines.text import ALPHABET_SIZE

    rows, batch = char_rows(WORD_TEXTS)
    layer, _ = fit_nbsvm(rows, WORD_LABELS, 3, CLASSES, max_n=3, min_n=2, base=ALPHABET_SIZE + 1, unit="chars")
    chars = keras.Input((None, 20), dtype="int32")
    model = keras.Model(chars, layer(chars))
    model.save(tmp_path / "chars.keras")
    loaded = keras.saving.load_model(tmp_path / "chars.keras")
    np.testing.assert_array_equal(loaded.predict_on_batch(batch), model.predict_on_batch(batch))
    config = loaded.layers[-1].get_config()
    assert (config["unit"], config["min_n"], config["max_n"]) == ("chars", 2, 3)
    with pytest.raises(ValueError, match="1 <= min_n <= max_n"):
        NgramScores(3, CLASSES, 2, ALPHABET_SIZE + 1, 4, unit="chars", min_n=3)
    with pytest.raises(ValueError, match="too large"):
        NgramScores(3, CLASSES, 8, ALPHABET_SIZE + 1, 4, unit="chars", min_n=2)
    with pytest.raises(ValueError, match="word n-grams start at 1"):
        NgramScores(3, CLASSES, 2, VOCABULARY, 4, min_n=2)
    with pytest.raises(ValueError, match="need base"):
        fit_nbsvm(rows, WORD_LABELS, 3, CLASSES, max_n=3, min_n=2, unit="chars")


def test_a_layer_saved_under_its_former_name_loads_as_ngram_scores():
    import keras

    layer, _ = fit_naive_bayes(TEXTS, LABELS, num_labels=3, classes=CLASSES, max_n=2, base=VOCABULARY)
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == "rnn_suite>NgramScores"
    config["registered_name"] = "rnn_suite>NaiveBayesScores"  # as models saved before the rename name it
    config["class_name"] = "NaiveBayesScores"
    loaded = keras.saving.deserialize_keras_object(config)
    assert isinstance(loaded, NgramScores) and loaded.get_config() == layer.get_config()
