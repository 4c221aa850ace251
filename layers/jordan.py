"""Jordan network: the network's output is fed back."""

import keras
from keras import activations, ops

from layers.base import PACKAGE, CellLayer, RecurrentCell


@keras.saving.register_keras_serializable(package=PACKAGE)
class JordanCell(RecurrentCell):
    """Jordan cell (Jordan, 1986; as used for slot filling by Mesnil et al., 2015).

    Unlike Elman's, the value fed back is the previous *output* y_{t-1}, not
    the hidden state. With a softmax output that is the previous step's label
    distribution.

        h_t = activation(x_t · kernel + y_{t-1} · recurrent_kernel + bias)
        y_t = output_activation(h_t · output_kernel + output_bias)
        state_t = y_t,  output_t = y_t,  y_0 = 0

    Weights: `kernel` (input_dim, units), `recurrent_kernel` (output_units,
    units), `bias` (units,), `output_kernel` (units, output_units),
    `output_bias` (output_units,). The output weights take the `kernel_*` and
    `bias_*` initializer, regularizer and constraint.

    Args:
        units: Positive integer, size of the hidden layer h_t.
        output_units: Positive integer, size of the output y_t (the state).
        activation: Activation of the hidden layer. Default: `tanh`.
        output_activation: Activation of the output. Default: `softmax`.
        use_bias: Whether to add `bias` and `output_bias`. Default: `True`.
        The remaining arguments are those of `keras.layers.SimpleRNNCell`:
        initializers, regularizers and constraints of `kernel`,
        `recurrent_kernel` and `bias`, `dropout` (on x_t), `recurrent_dropout`
        (on y_{t-1}), `seed`.

    Call arguments:
        inputs: (batch, input_dim), the step's input.
        states: [y_{t-1}] with shape (batch, output_units).
        training: Whether dropout applies.
    """

    def __init__(self, units, output_units, output_activation="softmax", **kwargs):
        super().__init__(units, **kwargs)
        if not isinstance(output_units, int) or output_units <= 0:
            raise ValueError(f"JordanCell: `output_units` must be a positive integer, got {output_units!r}.")
        self.output_units = output_units
        self.output_activation = activations.get(output_activation)
        self.state_size = output_units
        self.output_size = output_units

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel = self.add_kernel("kernel", (input_shape[-1], self.units))
        self.recurrent_kernel = self.add_kernel("recurrent_kernel", (self.output_units, self.units), recurrent=True)
        self.output_kernel = self.add_kernel("output_kernel", (self.units, self.output_units))
        if self.use_bias:
            self.bias = self.add_bias("bias", (self.units,))
            self.output_bias = self.add_bias("output_bias", (self.output_units,))
        else:
            self.bias = self.output_bias = None

    def step(self, projected, states, training=False):
        y_prev = states[0] if isinstance(states, (list, tuple)) else states
        h = self.activation(projected + ops.matmul(self.drop_recurrent(y_prev, training), self.recurrent_kernel))
        y = ops.matmul(h, self.output_kernel)
        if self.output_bias is not None:
            y = y + self.output_bias
        y = self.output_activation(y)
        new_state = [y] if isinstance(states, (list, tuple)) else y
        return y, new_state

    def get_config(self):
        return {
            **super().get_config(),
            "output_units": self.output_units,
            "output_activation": activations.serialize(self.output_activation),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class Jordan(CellLayer):
    """Jordan recurrent layer: `keras.layers.RNN(JordanCell(units, output_units, ...))`."""

    cell_class = JordanCell
