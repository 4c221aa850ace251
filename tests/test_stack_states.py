"""RecurrentStack returns and accepts states, for every kind, stacked and bidirectional.

The references are properties any recurrent network has, computed without the stack's state
code: a sequence read in two halves, the second started from the first's final states, gives
the same outputs and states as the whole sequence read at once; a padded sequence's final states
are those of its last real step; each layer's states are its own Keras layer's `return_state`.
"""

import keras
import numpy as np
import pytest

from layers import CELL_KINDS, RecurrentStack

RNG = np.random.default_rng(3)
X = RNG.normal(size=(3, 8, 5)).astype("float32")


def stack(kind, bidirectional=False, layers=2, return_sequences=True):
    keras.utils.set_random_seed(1)
    return RecurrentStack(
        kind, 6, num_layers=layers, bidirectional=bidirectional, return_sequences=return_sequences,
        return_state=True, output_units=4,
    )  # fmt: skip


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_reading_in_two_halves_from_the_returned_states_equals_reading_at_once(kind):
    layer = stack(kind)
    whole, whole_states = layer(X)
    first, first_states = layer(X[:, :5])
    second, second_states = layer(X[:, 5:], initial_state=first_states)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)
    for got, expected in zip(sum(second_states, []), sum(whole_states, [])):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    expected_sizes = {"lstm": [6, 6], "peephole_lstm": [6, 6], "jordan": [4]}.get(kind, [6])
    assert [[s.shape[-1] for s in states] for states in whole_states] == [expected_sizes] * 2


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_bidirectional_states_are_each_directions_and_start_each_direction(kind):
    layer = stack(kind, bidirectional=True, layers=1)
    output, (states,) = layer(X)
    bidirectional = layer.recurrent_layers[0]
    reference = bidirectional(X)  # Keras' own Bidirectional with return_state: [output, fw..., bw...]
    np.testing.assert_allclose(output, reference[0], atol=1e-6)
    assert len(states) == len(reference) - 1
    for got, expected in zip(states, reference[1:]):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    # Started from other states, both directions change; from the zeros, nothing does.
    zeros = [np.zeros_like(s) for s in states]
    np.testing.assert_allclose(layer(X, initial_state=[zeros])[0], output, atol=1e-6)
    moved = layer(X, initial_state=[[s + 0.5 for s in zeros]])[0]
    width = output.shape[-1] // 2
    # Each direction's first step: the forward one's at the start, the backward one's at the end.
    assert not np.allclose(moved[:, 0, :width], output[:, 0, :width], atol=1e-4)
    assert not np.allclose(moved[:, -1, width:], output[:, -1, width:], atol=1e-4)


@pytest.mark.parametrize("kind", ["elman", "lstm", "gru", "jordan"])
def test_a_padded_sequence_keeps_the_states_of_its_last_real_step(kind):
    layer = stack(kind, layers=1, return_sequences=False)
    mask = np.ones((3, 8), bool)
    mask[0, 5:] = False  # the first sequence has 5 steps
    _, (padded,) = layer(X, mask=mask)
    _, (short,) = layer(X[:1, :5])
    for got, expected in zip(padded, short):
        np.testing.assert_allclose(got[:1], expected, atol=1e-5)


def test_an_encoder_starts_a_decoder_in_a_functional_model_that_saves_and_loads(tmp_path):
    source = keras.Input((None, 5))
    target = keras.Input((None, 5))
    encoded, states = RecurrentStack("lstm", 6, num_layers=2, return_state=True, name="encoder")(source)
    decoded = RecurrentStack("lstm", 6, num_layers=2, name="decoder")(target, initial_state=states)
    model = keras.Model([source, target], decoded)
    expected = model.predict([X, X[:, :4]], verbose=0)
    model.save(tmp_path / "seq2seq.keras")
    loaded = keras.saving.load_model(tmp_path / "seq2seq.keras")
    np.testing.assert_allclose(loaded.predict([X, X[:, :4]], verbose=0), expected, atol=1e-6)
    assert loaded.get_layer("encoder").get_config()["return_state"] is True


def test_initial_state_needs_one_entry_per_layer():
    layer = stack("gru", layers=2)
    with pytest.raises(ValueError, match="one list of states"):
        layer(X, initial_state=[[np.zeros((3, 6), "float32")]])
