"""The seq2seq layers against NumPy implementations of their equations."""

import numpy as np
import pytest
import keras

from layers import CELL_KINDS
from layers.seq2seq import Attention, AttentionDecoder, Bridge, FinalOutputs, NextSourceStep

RNG = np.random.default_rng(0)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def numpy_attention(layer, query, memory, mask):
    """(context, weights) of queries (batch, T, q) by the score's equation."""
    if layer.score == "additive":
        wq, wm, v = (np.asarray(w) for w in (layer.query_kernel, layer.memory_kernel, layer.scale))
        scores = np.tanh((query @ wq)[:, :, None, :] + (memory @ wm)[:, None, :, :]) @ v
    else:
        scores = (query @ np.asarray(layer.kernel)) @ memory.transpose(0, 2, 1)
    scores = np.where(mask[:, None, :], scores, -np.inf)
    weights = softmax(scores)
    return weights @ memory, weights


@pytest.mark.parametrize("score", ["additive", "multiplicative"])
def test_attention_weights_and_context_match_numpy(score):
    query = RNG.normal(size=(3, 4, 5)).astype("float32")
    memory = RNG.normal(size=(3, 6, 7)).astype("float32")
    mask = np.ones((3, 6), dtype=bool)
    mask[1, 4:] = False
    mask[2, 1:] = False
    layer = Attention(score, units=8)
    context, weights = layer(query, memory, mask=mask)
    expected_context, expected_weights = numpy_attention(layer, query, memory, mask)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
    np.testing.assert_allclose(context, expected_context, atol=1e-5)
    assert np.all(np.asarray(weights)[~np.broadcast_to(mask[:, None, :], weights.shape)] == 0)
    # One step (batch, q) gives that step's row.
    step_context, step_weights = layer.attend(query[:, 2], layer.keys(memory), memory, mask)
    np.testing.assert_allclose(step_weights, expected_weights[:, 2], atol=1e-5)
    np.testing.assert_allclose(step_context, expected_context[:, 2], atol=1e-5)


def numpy_lstm(cell, x, h, c):
    z = x @ np.asarray(cell.kernel) + h @ np.asarray(cell.recurrent_kernel) + np.asarray(cell.bias)
    i, f, g, o = np.split(z, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def numpy_decoder(decoder, inputs, memory, mask, h, c):
    """Luong's decoder with input feeding over every step, an LSTM cell: the docstring's equations."""
    feed = np.zeros((inputs.shape[0], decoder.units))
    combine = np.asarray(decoder.combine.kernel)
    outputs = []
    for t in range(inputs.shape[1]):
        x = np.concatenate([inputs[:, t], feed], axis=-1) if decoder.input_feeding else inputs[:, t]
        h, c = numpy_lstm(decoder.cell, x, h, c)
        context, _ = numpy_attention(decoder.attention_layer, h[:, None], memory, mask)
        feed = np.tanh(np.concatenate([context[:, 0], h], axis=-1) @ combine)
        outputs.append(feed)
    return np.stack(outputs, axis=1)


@pytest.mark.parametrize("score,feeding", [("additive", True), ("multiplicative", True), ("additive", False)])
def test_decoder_matches_numpy_equations(score, feeding):
    inputs = RNG.normal(size=(2, 5, 3)).astype("float32")
    memory = RNG.normal(size=(2, 4, 6)).astype("float32")
    mask = np.array([[True] * 4, [True, True, False, False]])
    h0, c0 = (RNG.normal(size=(2, 8)).astype("float32") for _ in range(2))
    decoder = AttentionDecoder("lstm", 8, attention=score, input_feeding=feeding)
    outputs = decoder(inputs, memory, [h0, c0], memory_mask=mask)
    expected = numpy_decoder(decoder, inputs, memory, mask, h0, c0)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    # One step of the generation path is the first step of the sequence.
    vector, weights, states, feed = decoder.step(
        inputs[:, 0], [h0, c0], decoder.initial_feed(2), memory, decoder.memory_keys(memory), mask
    )
    np.testing.assert_allclose(vector, expected[:, 0], atol=1e-5)
    assert np.all(np.asarray(weights)[~mask] == 0)


def test_decoder_without_attention_is_the_cell():
    inputs = RNG.normal(size=(2, 4, 3)).astype("float32")
    memory = RNG.normal(size=(2, 4, 6)).astype("float32")
    h0 = RNG.normal(size=(2, 5)).astype("float32")
    decoder = AttentionDecoder("gru", 5, attention=None)
    outputs = np.asarray(decoder(inputs, memory, [h0]))
    layer = keras.layers.GRU(5, return_sequences=True)
    layer.build((2, 4, 3))
    layer.set_weights(decoder.recurrent.get_weights())
    np.testing.assert_allclose(outputs, layer(inputs, initial_state=[h0]), atol=1e-6)
    assert decoder.input_feeding is False  # nothing to feed without attention


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_every_cell_kind_decodes_and_serializes(kind, tmp_path):
    source = keras.Input((None, 4))
    previous = keras.Input((None, 3))
    mask = keras.ops.ones_like(source[:, :, 0], dtype="bool")
    decoder = AttentionDecoder(kind, 6, attention="multiplicative", input_feeding=True, dropout=0.2, name="decoder")
    states = Bridge(decoder.state_sizes)(FinalOutputs()(source, mask))
    outputs = decoder(previous, source, states, memory_mask=mask)
    model = keras.Model([source, previous], keras.layers.Dense(2)(outputs))
    x = [RNG.normal(size=(2, 3, 4)).astype("float32"), RNG.normal(size=(2, 5, 3)).astype("float32")]
    model.compile("adam", "mse")
    model.fit(x, np.zeros((2, 5, 2)), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    config = loaded.get_layer("decoder").get_config()
    assert (config["kind"], config["units"], config["attention"], config["dropout"]) == (kind, 6, "multiplicative", 0.2)


def test_final_outputs_and_next_source_step_match_numpy():
    outputs = RNG.normal(size=(2, 5, 6)).astype("float32")
    mask = np.array([[True] * 5, [True, True, True, False, False]])
    summary = np.asarray(FinalOutputs(bidirectional=True)(outputs, mask))
    np.testing.assert_allclose(summary[1], np.concatenate([outputs[1, 2, :3], outputs[1, 0, 3:]]))
    np.testing.assert_allclose(summary[0], np.concatenate([outputs[0, 4, :3], outputs[0, 0, 3:]]))
    # previous ids, advance id 7: step t reads the source step after the 7s among ids 0..t.
    previous = np.array([[1, 7, 4, 7, 7, 7], [1, 4, 7, 7, 7, 2]])
    picked = np.asarray(NextSourceStep(7)(previous, outputs, mask))
    for b in range(2):
        for t in range(6):
            position = int(np.sum(previous[b, : t + 1] == 7))
            expected = outputs[b, position] if position < mask[b].sum() else np.zeros(6)
            np.testing.assert_allclose(picked[b, t], expected)
