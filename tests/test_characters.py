"""Character features (layers/characters.py) against their definition; no TensorFlow, so they also run
on the other Keras backends (the character ids are tested with the text pipeline)."""

import keras
import numpy as np
import pytest

from layers import CharacterFeatures

RNG = np.random.default_rng(11)


def numpy_character_features(ids, embeddings, kernel, bias):
    """v_f = tanh(max over real characters k of Σ_j e_{k+j} · K_j), e = 0 outside the word; 0 for padding words."""
    width = kernel.shape[0]
    half = width // 2
    batch, steps, chars = ids.shape
    out = np.zeros((batch, steps, kernel.shape[-1]), dtype="float64")
    for b in range(batch):
        for t in range(steps):
            real = [k for k in range(chars) if ids[b, t, k] != 0]
            if not real:
                continue
            best = np.full(kernel.shape[-1], -np.inf)
            for k in real:
                z = bias.astype("float64").copy()
                for j in range(width):
                    position = k + j - half
                    if 0 <= position < chars and ids[b, t, position] != 0:
                        z += embeddings[ids[b, t, position]] @ kernel[j]
                best = np.maximum(best, z)
            out[b, t] = np.tanh(best)
    return out


@pytest.mark.parametrize("width", [1, 3, 5])
def test_character_features_match_numpy_on_words_of_every_length(width):
    # Words of 1, 2, 4 and 6 characters (the last fills the row), a padding word, a character id of 255.
    ids = np.array(
        [
            [[5, 0, 0, 0, 0, 0], [7, 3, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]],
            [[9, 12, 255, 4, 0, 0], [2, 8, 6, 1, 11, 10], [3, 3, 0, 0, 0, 0]],
        ],
        dtype="int32",
    )
    layer = CharacterFeatures(filters=4, width=width, embedding_dim=3, embeddings_initializer="normal")
    layer.build(ids.shape)
    bias = RNG.normal(size=4).astype("float32")
    layer.bias.assign(bias)  # the zero start would hide a wrong bias term
    out = keras.ops.convert_to_numpy(layer(ids))
    expected = numpy_character_features(
        ids, keras.ops.convert_to_numpy(layer.embeddings), keras.ops.convert_to_numpy(layer.kernel), bias
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert np.all(out[0, 2] == 0)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer.compute_mask(ids)), [[True, True, False], [True, True, True]]
    )


def test_character_features_do_not_depend_on_the_padding_of_a_word_or_sentence():
    layer = CharacterFeatures(filters=5, width=3, embedding_dim=4, embeddings_initializer="normal")
    ids = np.array([[[4, 9, 2, 0], [6, 0, 0, 0]]], dtype="int32")
    wider = np.concatenate([ids, np.zeros((1, 2, 3), dtype="int32")], axis=-1)
    longer = np.concatenate([wider, np.zeros((1, 2, 7), dtype="int32")], axis=1)
    short = keras.ops.convert_to_numpy(layer(ids))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(wider)), short, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(longer))[:, :2], short, rtol=1e-6, atol=1e-6)


def test_character_features_survive_a_keras_save_and_load(tmp_path):
    chars = keras.Input((None, 6), dtype="int32")
    features = CharacterFeatures(filters=3, width=5, embedding_dim=2, activation="relu", name="characters")(chars)
    model = keras.Model(chars, features)
    model.save(tmp_path / "characters.keras")
    reloaded = keras.saving.load_model(tmp_path / "characters.keras")
    ids = RNG.integers(0, 256, size=(2, 3, 6)).astype("int32")
    np.testing.assert_array_equal(reloaded.predict_on_batch(ids), model.predict_on_batch(ids))
    config = reloaded.get_layer("characters").get_config()
    assert (config["filters"], config["width"], config["embedding_dim"], config["alphabet_size"]) == (3, 5, 2, 256)
    assert config["activation"] == "relu"


@pytest.mark.parametrize(
    "arguments, message",
    [({"width": 2}, "odd positive integer, got 2"), ({"filters": 0}, "`filters` must be a positive integer")],
)
def test_character_features_reject_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        CharacterFeatures(**arguments)
