"""Context layers (layers/context.py) against numpy versions of their definitions."""

import keras
import numpy as np
import pytest

from layers import AppendToSteps, ContextWindow, WordDropout, WordStatistics

RNG = np.random.default_rng(7)
STEPS = RNG.normal(size=(2, 5, 3)).astype("float32")
LENGTHS = [5, 3]
MASK = np.arange(5)[None, :] < np.array(LENGTHS)[:, None]


def numpy_windows(x, mask, size):
    """out_t = [x_{t-k}; ...; x_{t+k}], zeros outside the sequence and on padding."""
    k = size // 2
    batch, steps, features = x.shape
    out = np.zeros((batch, steps, size * features), dtype=x.dtype)
    for b in range(batch):
        for t in range(steps):
            for slot, offset in enumerate(range(-k, k + 1)):
                s = t + offset
                if 0 <= s < steps and mask[b, s]:
                    out[b, t, slot * features : (slot + 1) * features] = x[b, s]
    return out


@pytest.mark.parametrize("size", [1, 3, 5])
def test_context_window_matches_numpy_and_ignores_padding(size):
    layer = ContextWindow(size)
    out = keras.ops.convert_to_numpy(layer(STEPS, mask=MASK))
    np.testing.assert_allclose(out, numpy_windows(STEPS, MASK, size), rtol=0, atol=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.compute_mask(STEPS, MASK)), MASK)


def test_context_window_rejects_an_even_size():
    with pytest.raises(ValueError, match="odd positive integer, got 4"):
        ContextWindow(4)


def test_append_to_steps_concatenates_the_vector_at_every_step_and_keeps_the_mask():
    vector = RNG.normal(size=(2, 4)).astype("float32")
    layer = AppendToSteps()
    out = keras.ops.convert_to_numpy(layer([STEPS, vector]))
    expected = np.concatenate([STEPS, np.repeat(vector[:, None, :], 5, axis=1)], axis=-1)
    np.testing.assert_array_equal(out, expected)
    assert layer.compute_output_shape([(None, None, 3), (None, 4)]) == (None, None, 7)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.compute_mask([STEPS, vector], [MASK, None])), MASK)


def test_context_layers_survive_a_keras_save_and_load(tmp_path):
    words = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 3, mask_zero=True)(words)
    windows = ContextWindow(3, name="windows")(x)
    sentence = keras.layers.GlobalAveragePooling1D()(windows)
    out = AppendToSteps(name="append")([windows, sentence])
    model = keras.Model(words, out)
    ids = np.array([[1, 2, 3, 4], [5, 6, 0, 0]], dtype="int32")
    model.save(tmp_path / "context.keras")
    reloaded = keras.saving.load_model(tmp_path / "context.keras")
    np.testing.assert_array_equal(reloaded.predict_on_batch(ids), model.predict_on_batch(ids))
    assert reloaded.get_layer("windows").get_config()["size"] == 3


def numpy_word_statistics(ids, groups, idf, keys=None):
    """[log(1 + n_t), idf(w_t), first occurrence / length] per step, by the definition: a word
    of group 0 counts the steps with its key (all of them the same word), or alone without keys."""
    out = np.zeros(ids.shape + (3,), dtype="float32")
    for b, row in enumerate(ids):
        length = int(np.sum(row > 0))
        for t, word in enumerate(row):
            if word == 0:
                continue
            if groups[word] == 0 and keys is not None:
                occurrences = [
                    s for s in range(len(row)) if row[s] > 0 and groups[row[s]] == 0 and keys[b, s] == keys[b, t]
                ]
            elif groups[word] == 0:
                occurrences = [t]
            else:
                occurrences = [s for s in range(len(row)) if row[s] > 0 and groups[row[s]] == groups[word]]
            out[b, t] = [np.log(1 + len(occurrences)), idf[word], min(occurrences) / length]
    return out


def test_word_statistics_count_groups_first_occurrences_and_idf_like_numpy(tmp_path):
    # ids 2, 3 share group 1 ("network", "networks"); id 1 (OOV) stands alone (group 0).
    groups = np.array([0, 0, 1, 1, 2, 3], dtype="int32")
    idf = np.array([0.0, 3.0, 0.5, 0.7, 1.5, 2.5], dtype="float32")
    ids = np.array([[4, 2, 5, 3, 1, 1, 2, 0], [5, 5, 4, 0, 0, 0, 0, 0]], dtype="int32")
    words = keras.Input((None,), dtype="int32")
    layer = WordStatistics(6, name="statistics")
    model = keras.Model(words, layer(words))
    layer.set_tables(groups, idf)
    out = model.predict_on_batch(ids)
    np.testing.assert_allclose(out, numpy_word_statistics(ids, groups, idf), rtol=1e-6)
    assert out[0, 1, 0] == pytest.approx(np.log(4))  # "network" x2 + "networks" x1, itself included
    model.save(tmp_path / "statistics.keras")
    loaded = keras.saving.load_model(tmp_path / "statistics.keras")
    np.testing.assert_array_equal(loaded.predict_on_batch(ids), out)


def test_word_statistics_count_unseen_words_by_their_keys_like_numpy(tmp_path):
    # id 1 (OOV) holds three unseen words: keys 70 (twice), 71 and 72 (once each); a key that
    # equals an in-vocabulary word's group (3) must not join that group.
    groups = np.array([0, 0, 1, 1, 2, 3], dtype="int32")
    idf = np.array([0.0, 3.0, 0.5, 0.7, 1.5, 2.5], dtype="float32")
    ids = np.array([[4, 1, 5, 1, 1, 2, 1, 0], [1, 5, 1, 0, 0, 0, 0, 0]], dtype="int32")
    keys = np.array([[9, 70, 8, 71, 70, 6, 3, 0], [72, 5, 72, 0, 0, 0, 0, 0]], dtype="int32")
    words, word_keys = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
    layer = WordStatistics(6, name="statistics")
    model = keras.Model([words, word_keys], layer([words, word_keys]))
    layer.set_tables(groups, idf)
    out = model.predict_on_batch([ids, keys])
    np.testing.assert_allclose(out, numpy_word_statistics(ids, groups, idf, keys), rtol=1e-6)
    assert out[0, 1, 0] == pytest.approx(np.log(3)) and out[0, 4, 2] == pytest.approx(1 / 7)
    assert out[0, 6, 0] == pytest.approx(np.log(2))  # key 3 is not group 3 (id 5)
    without_keys = keras.Model(words, WordStatistics(6)(words))
    without_keys.layers[-1].set_tables(groups, idf)
    assert without_keys.predict_on_batch(ids)[0, 1, 0] == pytest.approx(np.log(2))  # alone
    model.save(tmp_path / "statistics.keras")
    loaded = keras.saving.load_model(tmp_path / "statistics.keras")
    np.testing.assert_array_equal(loaded.predict_on_batch([ids, keys]), out)


def test_word_dropout_replaces_real_words_by_oov_in_training_only(tmp_path):
    ids = np.tile(np.r_[np.arange(2, 52), np.zeros(50)], (200, 1)).astype("int32")
    layer = WordDropout(0.25, oov_id=1, seed=3)
    dropped = keras.ops.convert_to_numpy(layer(ids, training=True))
    real = ids != 0
    changed = dropped != ids
    assert not changed[~real].any()  # padding stays padding
    assert (dropped[changed] == 1).all()
    assert changed[real].mean() == pytest.approx(0.25, abs=0.02)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(ids)), ids)  # inference: unchanged
    assert WordDropout.from_config(layer.get_config()).get_config() == layer.get_config()
    assert {"rate": 0.25, "oov_id": 1, "seed": 3}.items() <= layer.get_config().items()
    with pytest.raises(ValueError, match="rate"):
        WordDropout(1.0)


def test_word_statistics_keep_padding_masked_beside_embeddings():
    """A tagger's outputs for a document do not depend on how much padding follows it."""
    words = keras.Input((None,), dtype="int32")
    statistics = WordStatistics(6)
    x = keras.layers.Embedding(6, 4, mask_zero=True)(words)
    x = keras.layers.Concatenate()([x, statistics(words)])
    out = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True))(x)
    model = keras.Model(words, out)
    statistics.set_tables(np.array([0, 0, 1, 1, 2, 3]), np.linspace(0, 1, 6))
    short = np.array([[4, 2, 5, 3]], dtype="int32")
    padded = np.array([[4, 2, 5, 3, 0, 0, 0, 0, 0, 0]], dtype="int32")
    np.testing.assert_allclose(model.predict_on_batch(padded)[:, :4], model.predict_on_batch(short), atol=1e-6)
