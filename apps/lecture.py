"""The lecture's worked examples, computed by the suite's real cells.

    python -m apps.lecture

prints
  1. the Elman toy network (every weight 1, linear, memory starting at 0);
  2. the LSTM memory cell with hand-set gates ("x2 = 1 adds x1 to memory,
     x2 = -1 resets it, x3 = 1 outputs it"), with Keras' LSTMCell and the
     suite's PeepholeLSTMCell (peepholes at zero);
  3. the gradient table: a 1-unit linear RNN, input 1 then zeros, 1000 steps:
     y^1000 and dL/dw (L = y^1000) for w = 1, 1.01, 0.99, 0.01, and one SGD step
     with and without gradient clipping.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras  # noqa: E402
from keras import ops  # noqa: E402

from apps.cli import non_negative_number, positive_int, positive_number  # noqa: E402
from layers import Elman, PeepholeLSTMCell  # noqa: E402

ELMAN_TOY_INPUTS = [(1.0, 1.0), (1.0, 1.0), (2.0, 2.0)]
MEMORY_CELL_INPUTS = [
    (1, 0, 0), (3, 1, 0), (2, 0, 0), (4, 1, 0), (2, 0, 0),
    (1, 0, 1), (3, -1, 0), (6, 1, 0), (1, 0, 1),
]  # fmt: skip
GRADIENT_WEIGHTS = (1.0, 1.01, 0.99, 0.01)


def elman_toy_outputs(inputs=ELMAN_TOY_INPUTS):
    """Outputs of the toy Elman network: 2 inputs, 2 hidden, 2 outputs, all weights 1."""
    x = np.asarray(inputs, dtype="float32")[None]
    model = keras.Sequential(
        [
            keras.Input((None, 2)),
            Elman(
                2,
                activation=None,
                use_bias=False,
                kernel_initializer="ones",
                recurrent_initializer="ones",
                return_sequences=True,
            ),
            keras.layers.Dense(2, activation=None, use_bias=False, kernel_initializer="ones"),
        ]
    )
    return ops.convert_to_numpy(model(x))[0]


def memory_cell(kind="lstm"):
    """A one-unit LSTM whose gates are set by hand, as in the lecture.

    Input gate opens when x2 = 1, forget gate closes (resets) when x2 = -1,
    output gate opens when x3 = 1; the cell input is x1, linear. Gate weights
    100 with biases ±10 make the sigmoids practically 0 or 1.
    """
    arguments = dict(activation=None, recurrent_activation="sigmoid", unit_forget_bias=False)
    if kind == "lstm":
        cell = keras.layers.LSTMCell(1, **arguments)
    elif kind == "peephole_lstm":
        cell = PeepholeLSTMCell(1, **arguments)
    else:
        raise ValueError(f"memory_cell: kind must be 'lstm' or 'peephole_lstm', got {kind!r}")
    layer = keras.layers.RNN(cell, return_sequences=True)
    layer.build((None, None, 3))
    # Keras' gate order: input, forget, cell input, output; rows are x1, x2, x3.
    kernel = np.array(
        [
            [0.0, 0.0, 1.0, 0.0],
            [100.0, 100.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 100.0],
        ],
        dtype="float32",
    )
    cell.kernel.assign(kernel)
    cell.recurrent_kernel.assign(np.zeros((1, 4), dtype="float32"))
    cell.bias.assign(np.array([-10.0, 10.0, 0.0, -10.0], dtype="float32"))
    if kind == "peephole_lstm":
        for weights in (
            cell.input_gate_peephole_weights,
            cell.forget_gate_peephole_weights,
            cell.output_gate_peephole_weights,
        ):
            weights.assign(np.zeros((1,), dtype="float32"))
    return layer


def memory_cell_outputs(kind="lstm", inputs=MEMORY_CELL_INPUTS):
    layer = memory_cell(kind)
    x = np.asarray(inputs, dtype="float32")[None]
    return ops.convert_to_numpy(layer(x))[0, :, 0]


def gradient_table(weights=GRADIENT_WEIGHTS, steps=1000, learning_rate=1e-3, clipnorm=1.0):
    """y^steps and dL/dw of a 1-unit linear RNN fed 1 then zeros, with L = y^steps.

    Each row also shows w after one SGD step, plain and with `clipnorm`.
    """
    import tensorflow as tf  # GradientTape: the gradient as the TF backend computes it

    x = np.zeros((1, steps, 1), dtype="float32")
    x[0, 0, 0] = 1.0
    rows = []
    for w in weights:
        layer = Elman(
            1,
            activation=None,
            use_bias=False,
            kernel_initializer="ones",
            recurrent_initializer=keras.initializers.Constant(w),
        )
        layer.build((None, steps, 1))
        recurrent = layer.cell.recurrent_kernel
        with tf.GradientTape() as tape:
            y_last = layer(x)[0, 0]
        gradient = tape.gradient(y_last, recurrent)
        row = {"w": w, "y": float(y_last), "dL_dw": float(gradient[0, 0])}
        for name, clip in (("w_after_step", None), ("w_after_clipped_step", clipnorm)):
            variable = keras.Variable(np.array([[w]], dtype="float32"))
            keras.optimizers.SGD(learning_rate=learning_rate, clipnorm=clip).apply([gradient], [variable])
            row[name] = float(ops.convert_to_numpy(variable)[0, 0])
        rows.append(row)
    return rows


def _format_vector(values):
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m apps.lecture",
        description="Print the lecture's worked examples as computed by the suite's cells.",
    )
    parser.add_argument("--steps", type=positive_int, default=1000, help="length of the gradient example")
    parser.add_argument("--learning-rate", type=positive_number, default=1e-3, help="SGD step size")
    parser.add_argument("--clipnorm", type=non_negative_number, default=1.0, help="gradient clipping norm")
    args = parser.parse_args(argv)

    print("1. Elman toy network: 2 inputs, 2 hidden, 2 outputs, all weights 1, linear, no bias")
    for x, y in zip(ELMAN_TOY_INPUTS, elman_toy_outputs()):
        print(f"   input {_format_vector(x)} -> output {_format_vector(np.round(y, 4))}")

    print("\n2. LSTM memory cell: x2=1 adds x1 to memory, x2=-1 resets it, x3=1 outputs it")
    outputs = {kind: memory_cell_outputs(kind) for kind in ("lstm", "peephole_lstm")}
    print(f"   {'x':>14}  {'y (LSTMCell)':>12}  {'y (PeepholeLSTMCell)':>20}")
    for t, x in enumerate(MEMORY_CELL_INPUTS):
        lstm_y, peephole_y = outputs["lstm"][t], outputs["peephole_lstm"][t]
        print(f"   {_format_vector(x):>14}  {lstm_y:12.3f}  {peephole_y:20.3f}")

    print(f"\n3. Gradients through time: 1-unit linear RNN, input 1 then zeros, {args.steps} steps, L = y^{args.steps}")
    print(
        f"   one SGD step, learning rate {args.learning_rate:g}, "
        f"with and without clipping the gradient norm to {args.clipnorm:g}"
    )
    header = f"   {'w':>6}  {'y^' + str(args.steps):>12}  {'dL/dw':>12}  {'w, plain step':>14}  {'w, clipped':>10}"
    print(header)
    for row in gradient_table(steps=args.steps, learning_rate=args.learning_rate, clipnorm=args.clipnorm):
        print(
            f"   {row['w']:>6g}  {row['y']:>12.4g}  {row['dL_dw']:>12.4g}"
            f"  {row['w_after_step']:>14.6g}  {row['w_after_clipped_step']:>10.6g}"
        )


if __name__ == "__main__":
    main()
