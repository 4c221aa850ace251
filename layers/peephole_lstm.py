"""LSTM with peephole connections: the gates also look at the memory cell."""

import keras
from keras import activations, initializers, ops

from layers.base import PACKAGE, CellLayer, RecurrentCell


@keras.saving.register_keras_serializable(package=PACKAGE)
class PeepholeLSTMCell(RecurrentCell):
    """LSTM cell with peephole connections (Gers & Schmidhuber, 2000).

    The equations of TF 2's `tf.keras.experimental.PeepholeLSTMCell`, which
    Keras 3 no longer has. With z_g = x_t · W_g + h_{t-1} · U_g + b_g for each
    gate g in (i, f, c, o):

        i_t = σ(z_i + p_i ⊙ c_{t-1})
        f_t = σ(z_f + p_f ⊙ c_{t-1})
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ activation(z_c)
        o_t = σ(z_o + p_o ⊙ c_t)                 (the output gate sees the new c_t)
        h_t = o_t ⊙ activation(c_t)
        state = [h_t, c_t],  output = h_t

    σ is `recurrent_activation`. Weights are laid out as in
    `keras.layers.LSTMCell` — `kernel` (input_dim, 4·units), `recurrent_kernel`
    (units, 4·units), `bias` (4·units,), gate order i, f, c, o — plus the
    peephole vectors `input_gate_peephole_weights` (p_i),
    `forget_gate_peephole_weights` (p_f) and `output_gate_peephole_weights`
    (p_o), each (units,), initialized with `kernel_initializer` as in TF 2.
    With zero peepholes the cell computes what `keras.layers.LSTMCell` computes.

    Args:
        units: Positive integer, size of h_t and c_t.
        activation: Activation of the cell input and of the output. Default: `tanh`.
        recurrent_activation: Activation of the gates. Default: `sigmoid`.
        unit_forget_bias: Add 1 to the forget gate's bias at initialization
            (forces `bias_initializer="zeros"` for that part). Default: `True`.
        The remaining arguments are those of `keras.layers.LSTMCell`. One
        dropout mask is shared by the four gates (Keras' LSTMCell draws four
        when `recurrent_dropout` > 0).

    Call arguments:
        inputs: (batch, input_dim), the step's input.
        states: [h_{t-1}, c_{t-1}], each (batch, units).
        training: Whether dropout applies.
    """

    def __init__(self, units, recurrent_activation="sigmoid", unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = unit_forget_bias
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        super().build(input_shape)
        units = self.units
        self.kernel = self.add_kernel("kernel", (input_shape[-1], 4 * units))
        self.recurrent_kernel = self.add_kernel("recurrent_kernel", (units, 4 * units), recurrent=True)
        if self.use_bias:
            initializer = self.bias_initializer
            if self.unit_forget_bias:
                base = self.bias_initializer

                def initializer(_, *args, **kwargs):
                    return ops.concatenate(
                        [
                            base((units,), *args, **kwargs),
                            initializers.get("ones")((units,), *args, **kwargs),
                            base((2 * units,), *args, **kwargs),
                        ]
                    )

            self.bias = self.add_bias("bias", (4 * units,), initializer=initializer)
        else:
            self.bias = None
        self.input_gate_peephole_weights = self.add_kernel("input_gate_peephole_weights", (units,))
        self.forget_gate_peephole_weights = self.add_kernel("forget_gate_peephole_weights", (units,))
        self.output_gate_peephole_weights = self.add_kernel("output_gate_peephole_weights", (units,))

    def step(self, projected, states, training=False):
        h_prev, c_prev = states
        z = projected + ops.matmul(self.drop_recurrent(h_prev, training), self.recurrent_kernel)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        i = self.recurrent_activation(z_i + self.input_gate_peephole_weights * c_prev)
        f = self.recurrent_activation(z_f + self.forget_gate_peephole_weights * c_prev)
        c = f * c_prev + i * self.activation(z_c)
        o = self.recurrent_activation(z_o + self.output_gate_peephole_weights * c)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class PeepholeLSTM(CellLayer):
    """Peephole LSTM layer: `keras.layers.RNN(PeepholeLSTMCell(units, ...))`."""

    cell_class = PeepholeLSTMCell
