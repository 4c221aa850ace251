"""Viterbi decoding under IOB constraints, against enumerating every tag sequence."""

import itertools

import keras
import numpy as np
import pytest

from layers import ViterbiDecoder, bio_constraints

LABELS = ["", "[UNK]", "O", "B-a", "I-a", "B-b", "I-b"]


def test_bio_constraints_allow_i_only_inside_its_own_chunk():
    transitions, first = bio_constraints(LABELS, num_special=2)
    allowed = {(LABELS[p], LABELS[c]) for p in range(7) for c in range(7) if transitions[p][c]}
    assert ("B-a", "I-a") in allowed and ("I-a", "I-a") in allowed
    assert ("O", "I-a") not in allowed and ("B-b", "I-a") not in allowed and ("I-b", "I-a") not in allowed
    assert ("I-a", "B-b") in allowed and ("I-b", "O") in allowed and ("O", "O") in allowed
    assert not any(transitions[p][c] for p in range(7) for c in range(7) if p < 2 or c < 2)
    assert [LABELS[c] for c in range(7) if first[c]] == ["O", "B-a", "B-b"]


def brute_force(log_probabilities, length, transitions, first):
    """The best allowed sequence of `length` tags, by trying them all."""
    size = log_probabilities.shape[-1]
    best, best_score = None, -np.inf
    for path in itertools.product(range(size), repeat=length):
        if not first[path[0]] or any(not transitions[a][b] for a, b in zip(path, path[1:])):
            continue
        score = sum(log_probabilities[t, k] for t, k in enumerate(path))
        if score > best_score:
            best, best_score = path, score
    return list(best)


@pytest.mark.parametrize("scores", ["logits", "probabilities"])
def test_viterbi_finds_the_best_allowed_sequence_of_every_masked_example(scores):
    rng = np.random.default_rng(7)
    transitions, first = bio_constraints(LABELS, num_special=2)
    logits = rng.normal(scale=2.0, size=(6, 5, 7)).astype("float32")
    logits[:, :, 4] += 2.0  # I-a scores high everywhere: argmax would start chunks with it
    lengths = [5, 4, 3, 2, 1, 5]
    mask = np.arange(5)[None, :] < np.array(lengths)[:, None]
    inputs = logits if scores == "logits" else keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    decoded = keras.ops.convert_to_numpy(ViterbiDecoder(transitions, first, scores=scores)(inputs, mask=mask))
    assert decoded.shape == (6, 5)
    log_probabilities = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    for row, length in enumerate(lengths):
        expected = brute_force(log_probabilities[row], length, transitions, first)
        assert decoded[row, :length].tolist() == expected, row
        assert (decoded[row, length:] == decoded[row, length - 1]).all()  # padding repeats the last tag
    argmax = logits.argmax(-1)
    assert (argmax[:, 0] == 4).any()  # so the constraint had work to do
    assert not (decoded[:, 0] == 4).any()


def test_viterbi_without_mask_and_with_everything_allowed_is_the_argmax():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 6, 4)).astype("float32")
    decoder = ViterbiDecoder([[True] * 4] * 4, [True] * 4)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(decoder(logits)), logits.argmax(-1))


def test_viterbi_decoder_survives_a_keras_save(tmp_path):
    transitions, first = bio_constraints(LABELS, num_special=2)
    scores = keras.Input((None, 7))
    model = keras.Model(scores, ViterbiDecoder(transitions, first, name="viterbi")(scores))
    model.save(tmp_path / "decoder.keras")
    reloaded = keras.models.load_model(tmp_path / "decoder.keras")
    logits = np.random.default_rng(0).normal(size=(2, 4, 7)).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded(logits)), keras.ops.convert_to_numpy(model(logits))
    )
    assert reloaded.get_layer("viterbi").get_config()["transitions"] == transitions
    with pytest.raises(ValueError, match="scores must be"):
        ViterbiDecoder(transitions, first, scores="log")


def test_viterbi_decoder_compiles_for_sequences_of_any_length():
    """predict_on_batch traces with an unknown time dimension: the same tags as eager calls."""
    transitions, first = bio_constraints(LABELS, num_special=2)
    decoder = ViterbiDecoder(transitions, first)
    scores, mask = keras.Input((None, 7)), keras.Input((None,), dtype="bool")
    model = keras.Model([scores, mask], decoder(scores, mask=mask))
    rng = np.random.default_rng(3)
    for steps in (3, 6, 9, 4):
        logits = rng.normal(size=(4, steps, 7)).astype("float32")
        real = np.arange(steps)[None, :] < rng.integers(1, steps + 1, size=(4, 1))
        expected = keras.ops.convert_to_numpy(decoder(logits, mask=real))
        np.testing.assert_array_equal(model.predict_on_batch([logits, real]), expected)
