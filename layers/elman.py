"""Elman network: the hidden state is fed back."""

import keras
from keras import ops

from layers.base import PACKAGE, CellLayer, RecurrentCell


@keras.saving.register_keras_serializable(package=PACKAGE)
class ElmanCell(RecurrentCell):
    """Elman cell (Elman, 1990): the hidden layer's previous values are an extra input.

    Equations, for input x_t and the previous hidden state h_{t-1} (h_0 = 0):

        h_t = activation(x_t · kernel + h_{t-1} · recurrent_kernel + bias)
        output_t = h_t

    Weights: `kernel` (input_dim, units), `recurrent_kernel` (units, units),
    `bias` (units,). Given the same weights it computes what
    `keras.layers.SimpleRNNCell` computes.

    Args:
        units: Positive integer, dimensionality of the hidden state.
        activation: Activation of the hidden layer. Default: `tanh`;
            `None` means linear.
        use_bias: Whether to add `bias`. Default: `True`.
        kernel_initializer, recurrent_initializer, bias_initializer:
            Initializers of `kernel`, `recurrent_kernel` and `bias`.
        kernel_regularizer, recurrent_regularizer, bias_regularizer:
            Regularizers of the same weights.
        kernel_constraint, recurrent_constraint, bias_constraint:
            Constraints of the same weights.
        dropout: Fraction of the inputs to drop (one mask per sequence).
        recurrent_dropout: Fraction of h_{t-1} to drop (one mask per sequence).
        seed: Random seed for dropout.

    Call arguments:
        inputs: (batch, input_dim), the step's input.
        states: [h_{t-1}] with shape (batch, units).
        training: Whether dropout applies.
    """

    def __init__(self, units, **kwargs):
        super().__init__(units, **kwargs)
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel = self.add_kernel("kernel", (input_shape[-1], self.units))
        self.recurrent_kernel = self.add_kernel("recurrent_kernel", (self.units, self.units), recurrent=True)
        self.bias = self.add_bias("bias", (self.units,)) if self.use_bias else None

    def step(self, projected, states, training=False):
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        z = projected + ops.matmul(self.drop_recurrent(h_prev, training), self.recurrent_kernel)
        h = self.activation(z)
        new_state = [h] if isinstance(states, (list, tuple)) else h
        return h, new_state


@keras.saving.register_keras_serializable(package=PACKAGE)
class Elman(CellLayer):
    """Elman recurrent layer: `keras.layers.RNN(ElmanCell(units, ...))`.

    Takes every `ElmanCell` argument and the `keras.layers.RNN` ones
    (`return_sequences`, `return_state`, `go_backwards`, `stateful`, `unroll`).
    """

    cell_class = ElmanCell
