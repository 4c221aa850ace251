"""layers.AveragedProbabilities against numpy and scipy: the log of the members' mean softmax."""

import keras
import numpy as np
import pytest
from scipy.special import softmax

from layers import AveragedProbabilities


def test_output_is_the_log_of_the_mean_softmax_and_reads_back_as_it():
    rng = np.random.default_rng(0)
    logits = [rng.normal(scale=3.0, size=(2, 5, 4)).astype("float32") for _ in range(3)]
    out = keras.ops.convert_to_numpy(AveragedProbabilities()(logits))
    mean = np.mean([softmax(z, axis=-1) for z in logits], axis=0)
    np.testing.assert_allclose(out, np.log(mean), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(softmax(out, axis=-1), mean, rtol=1e-5, atol=1e-7)
    # Not the mean of the logits: one confident member does not outvote two unsure ones.
    assert not np.allclose(out, np.log(softmax(np.mean(logits, axis=0), axis=-1)), atol=1e-3)


def test_one_member_gives_back_its_own_distribution_and_tiny_probabilities_stay_finite():
    z = np.array([[0.0, 200.0, -200.0]], dtype="float32")
    out = keras.ops.convert_to_numpy(AveragedProbabilities(epsilon=1e-7)([z]))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [[np.log(1e-7), 0.0, np.log(1e-7)]], atol=1e-6)


def test_padding_mask_passes_and_a_saved_model_reloads_with_the_same_outputs(tmp_path):
    words = keras.Input((None,), dtype="int32", name="words")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True, name="embedding")(words)
    heads = [keras.layers.Dense(3, name=f"head_{i}")(embedded) for i in range(2)]
    layer = AveragedProbabilities(epsilon=1e-6, name="averaged")
    out = layer(heads)
    assert out._keras_mask is not None  # the embedding's padding mask, passed on
    model = keras.Model(words, out)
    ids = np.array([[3, 4, 0], [5, 0, 0]], dtype="int32")
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(reloaded.predict_on_batch(ids), model.predict_on_batch(ids))
    assert reloaded.get_layer("averaged").get_config()["epsilon"] == 1e-6
    mask = layer.compute_mask(heads, [np.array([True, False]), None])
    np.testing.assert_array_equal(mask, [True, False])


def test_a_single_tensor_is_refused():
    with pytest.raises(ValueError, match="non-empty list"):
        AveragedProbabilities()(np.zeros((1, 3), dtype="float32"))
