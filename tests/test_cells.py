"""Cells against numpy implementations of their equations, Keras' siblings, and the lecture."""

import inspect

import keras
import numpy as np
import pytest
from keras import ops

from apps import lecture
from layers import (
    CELL_KINDS,
    Elman,
    ElmanCell,
    Jordan,
    JordanCell,
    PeepholeLSTM,
    PeepholeLSTMCell,
    RecurrentStack,
)

RNG = np.random.default_rng(1234)
BATCH, TIME, FEATURES, UNITS = 3, 6, 5, 4
# Example 0 full, example 1 right-padded, example 2 with a masked step in the middle.
MASK = np.array(
    [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 1, 1, 1, 0]],
    dtype=bool,
)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def run_reference(step, x, mask, initial_state):
    """Runs `step(x_t, state) -> (output, state)` where mask is set; holds state where not.

    Returns the outputs at every step (the previous output where masked, as
    Keras does) and the final state.
    """
    outputs = np.zeros((x.shape[0], x.shape[1], step.output_size))
    state = initial_state
    previous = np.zeros((x.shape[0], step.output_size))
    for t in range(x.shape[1]):
        out, new_state = step(x[:, t], state)
        keep = mask[:, t][:, None]
        state = [np.where(keep, n, s) for n, s in zip(new_state, state)]
        previous = np.where(keep, out, previous)
        outputs[:, t] = previous
    return outputs, state


class NumpyElman:
    def __init__(self, kernel, recurrent_kernel, bias):
        self.k, self.u, self.b = kernel, recurrent_kernel, bias
        self.output_size = kernel.shape[1]

    def __call__(self, x, state):
        h = np.tanh(x @ self.k + state[0] @ self.u + self.b)
        return h, [h]


class NumpyJordan:
    def __init__(self, kernel, recurrent_kernel, bias, output_kernel, output_bias):
        self.k, self.u, self.b = kernel, recurrent_kernel, bias
        self.v, self.c = output_kernel, output_bias
        self.output_size = output_kernel.shape[1]

    def __call__(self, x, state):
        h = np.tanh(x @ self.k + state[0] @ self.u + self.b)
        y = softmax(h @ self.v + self.c)
        return y, [y]


class NumpyPeepholeLSTM:
    def __init__(self, kernel, recurrent_kernel, bias, p_i, p_f, p_o):
        self.k, self.u, self.b = kernel, recurrent_kernel, bias
        self.p_i, self.p_f, self.p_o = p_i, p_f, p_o
        self.output_size = recurrent_kernel.shape[0]

    def __call__(self, x, state):
        h, c = state
        z_i, z_f, z_c, z_o = np.split(x @ self.k + h @ self.u + self.b, 4, axis=-1)
        i = sigmoid(z_i + self.p_i * c)
        f = sigmoid(z_f + self.p_f * c)
        c_new = f * c + i * np.tanh(z_c)
        o = sigmoid(z_o + self.p_o * c_new)
        h_new = o * np.tanh(c_new)
        return h_new, [h_new, c_new]


def randomize(layer):
    """Random weights everywhere (biases and peepholes too), returned by name."""
    weights = {}
    for variable in layer.weights:
        value = RNG.normal(scale=0.5, size=variable.shape).astype("float32")
        variable.assign(value)
        weights[variable.name] = value.astype("float64")
    return weights


def keras_run(layer, x, mask):
    outputs = layer(x, mask=ops.convert_to_tensor(mask))
    sequence, *states = outputs
    return ops.convert_to_numpy(sequence), [ops.convert_to_numpy(s) for s in states]


X = RNG.normal(size=(BATCH, TIME, FEATURES)).astype("float32")


@pytest.mark.parametrize("unroll", [False, True])  # unrolled: one graph node per step, same equations
def test_elman_cell_matches_numpy_equations(unroll):
    layer = Elman(UNITS, return_sequences=True, return_state=True, unroll=unroll)
    layer.build(X.shape)
    w = randomize(layer)
    reference = NumpyElman(w["kernel"], w["recurrent_kernel"], w["bias"])
    expected, expected_state = run_reference(reference, X, MASK, [np.zeros((BATCH, UNITS))])
    sequence, states = keras_run(layer, X, MASK)
    np.testing.assert_allclose(sequence[MASK], expected[MASK], atol=1e-5)
    np.testing.assert_allclose(states[0], expected_state[0], atol=1e-5)


@pytest.mark.parametrize("unroll", [False, True])  # unrolled: one graph node per step, same equations
def test_jordan_cell_matches_numpy_equations_and_feeds_back_its_output(unroll):
    output_units = 3
    layer = Jordan(UNITS, output_units=output_units, return_sequences=True, return_state=True, unroll=unroll)
    layer.build(X.shape)
    w = randomize(layer)
    assert w["recurrent_kernel"].shape == (output_units, UNITS)
    reference = NumpyJordan(w["kernel"], w["recurrent_kernel"], w["bias"], w["output_kernel"], w["output_bias"])
    expected, expected_state = run_reference(reference, X, MASK, [np.zeros((BATCH, output_units))])
    sequence, states = keras_run(layer, X, MASK)
    np.testing.assert_allclose(sequence[MASK], expected[MASK], atol=1e-5)
    # The state is the output y_t, a distribution over output_units.
    np.testing.assert_allclose(states[0], expected_state[0], atol=1e-5)
    np.testing.assert_allclose(states[0].sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("unroll", [False, True])  # unrolled: one graph node per step, same equations
def test_peephole_lstm_cell_matches_numpy_equations(unroll):
    layer = PeepholeLSTM(UNITS, return_sequences=True, return_state=True, unroll=unroll)
    layer.build(X.shape)
    w = randomize(layer)
    reference = NumpyPeepholeLSTM(
        w["kernel"],
        w["recurrent_kernel"],
        w["bias"],
        w["input_gate_peephole_weights"],
        w["forget_gate_peephole_weights"],
        w["output_gate_peephole_weights"],
    )
    zeros = np.zeros((BATCH, UNITS))
    expected, (expected_h, expected_c) = run_reference(reference, X, MASK, [zeros, zeros])
    sequence, (h, c) = keras_run(layer, X, MASK)
    np.testing.assert_allclose(sequence[MASK], expected[MASK], atol=1e-5)
    np.testing.assert_allclose(h, expected_h, atol=1e-5)
    np.testing.assert_allclose(c, expected_c, atol=1e-5)


@pytest.mark.parametrize(
    "ours_class, keras_class",
    [(Elman, keras.layers.SimpleRNN), (PeepholeLSTM, keras.layers.LSTM)],
    ids=["elman=simple_rnn", "peephole_lstm=lstm"],
)
def test_cell_equals_its_keras_sibling_given_the_same_weights(ours_class, keras_class):
    """Elman is SimpleRNN; the peephole LSTM with zero peepholes is Keras' LSTM."""
    ours = ours_class(UNITS, return_sequences=True)
    theirs = keras_class(UNITS, return_sequences=True)
    ours.build(X.shape)
    theirs.build(X.shape)
    randomize(theirs)
    shared = len(theirs.weights)
    for source, target in zip(theirs.weights, ours.weights[:shared]):
        target.assign(source)
    for peephole in ours.weights[shared:]:
        peephole.assign(np.zeros(peephole.shape, dtype="float32"))
    np.testing.assert_allclose(
        ops.convert_to_numpy(ours(X, mask=MASK))[MASK],
        ops.convert_to_numpy(theirs(X, mask=MASK))[MASK],
        atol=1e-5,
    )


def test_peephole_weights_change_the_result():
    layer = PeepholeLSTM(UNITS, return_sequences=True)
    layer.build(X.shape)
    randomize(layer)
    with_peepholes = ops.convert_to_numpy(layer(X))
    for peephole in layer.weights[3:]:
        peephole.assign(np.zeros(peephole.shape, dtype="float32"))
    assert np.abs(ops.convert_to_numpy(layer(X)) - with_peepholes).max() > 1e-3


def test_lstm_unit_forget_bias_initializes_the_forget_gate_to_one():
    layer = PeepholeLSTM(UNITS)
    layer.build(X.shape)
    bias = ops.convert_to_numpy(layer.cell.bias)
    np.testing.assert_array_equal(bias[UNITS : 2 * UNITS], 1.0)
    np.testing.assert_array_equal(np.delete(bias, range(UNITS, 2 * UNITS)), 0.0)


# The lecture's worked examples -------------------------------------------------------------


def test_lecture_elman_toy_example():
    np.testing.assert_allclose(lecture.elman_toy_outputs(), [[4, 4], [12, 12], [32, 32]], rtol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "peephole_lstm"])
def test_lecture_lstm_memory_cell_example(kind):
    expected = [0, 0, 0, 0, 0, 7, 0, 0, 6]
    np.testing.assert_allclose(lecture.memory_cell_outputs(kind), expected, atol=0.01)


def test_lecture_gradient_table_matches_closed_form():
    steps = 1000
    rows = lecture.gradient_table(steps=steps, learning_rate=1e-3, clipnorm=1.0)
    for row in rows:
        w = row["w"]
        # y^T = w^(T-1) and dy^T/dw = (T-1) w^(T-2) for input 1 at the first step only.
        np.testing.assert_allclose(row["y"], w ** (steps - 1), rtol=1e-3, atol=1e-30)
        np.testing.assert_allclose(row["dL_dw"], (steps - 1) * w ** (steps - 2), rtol=1e-3, atol=1e-30)
        gradient = row["dL_dw"]
        np.testing.assert_allclose(row["w_after_step"], w - 1e-3 * gradient, rtol=1e-4)
        clipped = gradient if abs(gradient) <= 1.0 else np.sign(gradient)
        np.testing.assert_allclose(row["w_after_clipped_step"], w - 1e-3 * clipped, rtol=1e-5)
    by_w = {row["w"]: row for row in rows}
    assert by_w[1.01]["y"] > 2e4 and by_w[0.99]["y"] < 1e-4  # explodes / vanishes


def test_lecture_module_prints_the_examples(capsys):
    lecture.main(["--steps", "50"])
    printed = capsys.readouterr().out
    assert "output (32, 32)" in printed
    assert "Gradients through time" in printed


# Configuration and serialization -----------------------------------------------------------


@pytest.mark.parametrize(
    "cell_class, extra",
    [
        (ElmanCell, {}),
        (JordanCell, {"output_units": 3, "output_activation": "sigmoid"}),
        (PeepholeLSTMCell, {"recurrent_activation": "hard_sigmoid", "unit_forget_bias": False}),
    ],
)
def test_get_config_echoes_every_constructor_argument(cell_class, extra):
    arguments = dict(
        units=5,
        activation="relu",
        use_bias=False,
        kernel_initializer="he_normal",
        recurrent_initializer="glorot_normal",
        bias_initializer="ones",
        kernel_regularizer="l2",
        recurrent_regularizer="l1",
        bias_regularizer="orthogonal_regularizer",
        kernel_constraint="non_neg",
        recurrent_constraint="unit_norm",
        bias_constraint="max_norm",
        dropout=0.25,
        recurrent_dropout=0.125,
        seed=7,
        **extra,
    )
    cell = cell_class(**arguments)
    config = cell.get_config()
    parameters = set()
    for klass in cell_class.__mro__:
        if klass.__module__.startswith("layers."):
            parameters |= set(inspect.signature(klass.__init__).parameters)
    parameters -= {"self", "kwargs"}
    assert parameters <= set(config), parameters - set(config)
    # Same arguments as Keras' siblings (SimpleRNNCell; LSTMCell for the LSTM).
    sibling = keras.layers.LSTMCell if cell_class is PeepholeLSTMCell else keras.layers.SimpleRNNCell
    sibling_arguments = set(inspect.signature(sibling.__init__).parameters) - {"self", "kwargs"}
    assert sibling_arguments <= parameters, sibling_arguments - parameters
    rebuilt = cell_class.from_config(config)
    assert rebuilt.get_config() == config
    assert config["dropout"] == 0.25 and config["seed"] == 7 and config["use_bias"] is False


def masked_model(kind):
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, 6, mask_zero=True)(inputs)
    x = RecurrentStack(kind, 4, num_layers=2, bidirectional=True, output_units=3)(x)
    outputs = keras.layers.Dense(2)(x)
    return keras.Model(inputs, outputs)


TOKENS = np.array([[3, 4, 5, 6, 0, 0], [7, 8, 0, 0, 0, 0]])


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_stacked_bidirectional_masked_model_survives_keras_save_and_load(kind, tmp_path):
    model = masked_model(kind)
    before = ops.convert_to_numpy(model(TOKENS))
    path = tmp_path / f"{kind}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(ops.convert_to_numpy(reloaded(TOKENS)), before)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_padding_does_not_change_the_result(kind):
    """With the mask, extra padding leaves the real steps' outputs unchanged (both directions)."""
    model = masked_model(kind)
    short = ops.convert_to_numpy(model(TOKENS[:, :4]))
    long = ops.convert_to_numpy(model(np.pad(TOKENS, ((0, 0), (0, 5)))))
    np.testing.assert_allclose(long[0, :4], short[0, :4], atol=1e-5)
    np.testing.assert_allclose(long[1, :2], short[1, :2], atol=1e-5)


@pytest.mark.parametrize("cell_class", [ElmanCell, PeepholeLSTMCell])
def test_dropout_uses_one_mask_per_sequence_and_only_in_training(cell_class):
    layer = keras.layers.RNN(cell_class(UNITS, dropout=0.5, seed=3), return_sequences=True)
    x = np.ones((2, 5, FEATURES), dtype="float32")
    inference = ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_array_equal(inference, ops.convert_to_numpy(layer(x, training=False)))
    training = ops.convert_to_numpy(layer(x, training=True))
    assert not np.allclose(training, inference)
    # The same input at every step and the same dropout mask: the dropped input
    # x·mask is constant over time, so an Elman cell fed it sees a fixed input.
    cell = layer.cell
    dropped = cell.drop_inputs(ops.convert_to_tensor(x[:, 0]), training=True)
    again = cell.drop_inputs(ops.convert_to_tensor(x[:, 0]), training=True)
    np.testing.assert_array_equal(ops.convert_to_numpy(dropped), ops.convert_to_numpy(again))
    cell.reset_dropout_mask()


@pytest.mark.parametrize("layer_class", [Elman, Jordan, PeepholeLSTM])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_layer_fast_path_equals_the_cell_stepped_by_keras(layer_class, go_backwards):
    # The wrappers project every step's input before their time loop; keras.layers.RNN
    # around the same cell projects each step inside it. Same weights, mask and dropout seed:
    # the same numbers, in inference and in training (dropout on inputs and state).
    arguments = {"dropout": 0.3, "recurrent_dropout": 0.2, "seed": 7}
    if layer_class is Jordan:
        arguments["output_units"] = 3
    fast = layer_class(UNITS, return_sequences=True, go_backwards=go_backwards, **arguments)
    stepped = keras.layers.RNN(
        layer_class.cell_class(UNITS, **arguments), return_sequences=True, go_backwards=go_backwards
    )
    fast.build(X.shape)
    stepped.build(X.shape)
    randomize(fast)
    stepped.set_weights(fast.get_weights())
    mask = ops.convert_to_tensor(MASK)
    for training in (False, True):
        expected = ops.convert_to_numpy(stepped(X, mask=mask, training=training))
        got = ops.convert_to_numpy(fast(X, mask=mask, training=training))
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not np.allclose(got, ops.convert_to_numpy(fast(X, mask=mask, training=False)))


def test_factory_rejects_unknown_kinds_by_name():
    with pytest.raises(ValueError, match="lstmm.*elman, jordan"):
        RecurrentStack("lstmm", 4)


def test_factory_builds_each_kind_with_the_requested_width():
    x = np.zeros((2, 3, FEATURES), dtype="float32")
    for kind in CELL_KINDS:
        stack = RecurrentStack(kind, 4, num_layers=2, bidirectional=True, output_units=3)
        width = 3 if kind == "jordan" else 4
        assert tuple(stack(x).shape) == (2, 3, 2 * width)
        last = RecurrentStack(kind, 4, return_sequences=False)  # Jordan: output_units = units
        assert tuple(last(x).shape) == (2, 4)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_every_kind_computes_in_low_precision_close_to_float32(policy):
    # --mixed-precision: the same weights give the float32 outputs up to the low dtype's rounding
    # (float16 keeps 11 bits, bfloat16 8), with finite values on the masked batch.
    x = RNG.normal(size=(BATCH, TIME, FEATURES)).astype("float32")
    tolerance = {"mixed_float16": 1e-2, "mixed_bfloat16": 5e-2}[policy]
    try:
        for kind in CELL_KINDS:
            keras.config.set_dtype_policy("float32")
            reference = RecurrentStack(kind, 8, bidirectional=True, output_units=5)
            expected = ops.convert_to_numpy(reference(x, mask=MASK))
            keras.config.set_dtype_policy(policy)
            low = RecurrentStack(kind, 8, bidirectional=True, output_units=5)
            low.build(x.shape)
            low.set_weights(reference.get_weights())
            out = low(x, mask=MASK)
            assert keras.backend.standardize_dtype(out.dtype) == policy.removeprefix("mixed_"), kind
            got = ops.convert_to_numpy(ops.cast(out, "float32"))
            assert np.all(np.isfinite(got)), kind
            np.testing.assert_allclose(got[MASK], expected[MASK], atol=tolerance, err_msg=kind)
    finally:
        keras.config.set_dtype_policy("float32")
