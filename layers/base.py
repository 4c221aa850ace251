"""What the custom cells share: constructor arguments, weights, config, and the layer wrapper.

Every cell here takes the constructor arguments of its Keras siblings
(`keras.layers.SimpleRNNCell`, `keras.layers.LSTMCell`), so code written for one
works for the other, and `get_config` echoes each of them.
"""

import keras
from keras import activations, constraints, initializers, ops, regularizers

# Keras' RNN layer creates the (variational) dropout masks before its time loop only for
# cells that derive from this mixin; without it a mask would be drawn inside the loop.
# Keras' own LSTMCell/GRUCell/SimpleRNNCell derive from it the same way.
from keras.src import backend  # backend.rnn: the time loop of keras.layers.RNN, on every backend
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

PACKAGE = "rnn_suite"


class RecurrentCell(keras.layers.Layer, DropoutRNNCell):
    """Base class: the arguments common to every recurrent cell.

    Subclasses define `build` and `call`, set `state_size` and `output_size`,
    and list their own extra arguments in `get_config`.
    """

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"{type(self).__name__}: `units` must be a positive integer, got {units!r}.")
        super().__init__(**kwargs)
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = min(1.0, max(0.0, dropout))
        self.recurrent_dropout = min(1.0, max(0.0, recurrent_dropout))
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)

    # Weights -----------------------------------------------------------------------------
    def add_kernel(self, name, shape, recurrent=False):
        """A weight matrix with the input (`recurrent=False`) or recurrent settings."""
        prefix = "recurrent" if recurrent else "kernel"
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=getattr(self, f"{prefix}_initializer"),
            regularizer=getattr(self, f"{prefix}_regularizer"),
            constraint=getattr(self, f"{prefix}_constraint"),
        )

    def add_bias(self, name, shape, initializer=None):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=initializer or self.bias_initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    # Dropout -----------------------------------------------------------------------------
    def drop_inputs(self, inputs, training):
        """Input dropout with one mask per sequence (the same mask at every step).

        `inputs` is one step (batch, input_dim) or a whole sequence (batch, time, input_dim).
        """
        if training and 0.0 < self.dropout < 1.0:
            if len(inputs.shape) == 3:
                return inputs * ops.expand_dims(self.get_dropout_mask(inputs[:, 0, :]), 1)
            return inputs * self.get_dropout_mask(inputs)
        return inputs

    def drop_recurrent(self, state, training):
        """Recurrent dropout with one mask per sequence (Gal & Ghahramani, 2016)."""
        if training and 0.0 < self.recurrent_dropout < 1.0:
            return state * self.get_recurrent_dropout_mask(state)
        return state

    # The step, in two parts ---------------------------------------------------------------
    def project_inputs(self, inputs, training=False):
        """The input's part of the pre-activations: dropout(x) · kernel + bias.

        Works on one step or on a whole sequence at once; the layer wrappers
        use the latter (see `CellLayer.inner_loop`).
        """
        z = ops.matmul(self.drop_inputs(inputs, training), self.kernel)
        return z + self.bias if self.bias is not None else z

    def step(self, projected, states, training=False):
        """One time step given the projected input: (output, new states). Defined by each cell."""
        raise NotImplementedError

    def call(self, inputs, states, training=False):
        return self.step(self.project_inputs(inputs, training), states, training)

    # State and config --------------------------------------------------------------------
    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


# Arguments of keras.layers.RNN itself, as opposed to the cell's.
_RNN_ARGUMENTS = (
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "zero_output_for_mask",
)
# Arguments of keras.layers.Layer, which belong to the wrapper, not to its cell.
_LAYER_ARGUMENTS = ("name", "dtype", "trainable", "autocast", "input_shape", "input_dim")


class CellLayer(keras.layers.RNN):
    """A thin layer around one cell, as `keras.layers.LSTM` is around `LSTMCell`.

    `Subclass(units, ..., return_sequences=True)` builds the cell from every
    argument that is not an RNN or Layer argument; `get_config` returns the
    cell's arguments and the RNN's side by side, so `from_config` is the constructor.
    """

    cell_class = None

    def __init__(self, units, **kwargs):
        rnn_kwargs = {k: kwargs.pop(k) for k in _RNN_ARGUMENTS if k in kwargs}
        layer_kwargs = {k: kwargs.pop(k) for k in _LAYER_ARGUMENTS if k in kwargs}
        cell = self.cell_class(units, dtype=layer_kwargs.get("dtype"), name="cell", **kwargs)
        super().__init__(cell, **rnn_kwargs, **layer_kwargs)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        return super().call(sequences, mask=mask, training=training, initial_state=initial_state)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        """The time loop, with the input projection taken out of it.

        x_t · kernel + bias does not depend on the state, so it is computed for
        every step in one large matrix product before the loop; each step then
        multiplies only its fed-back state by `recurrent_kernel`. The equations
        are the cell's (`cell.call` = `cell.step(cell.project_inputs(x))`);
        only the order of the work changes.
        """
        cell = self.cell

        def step(projected, states):
            output, new_states = cell.step(projected, states, training=training)
            return output, list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]

        return backend.rnn(
            step,
            cell.project_inputs(sequences, training),
            list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state],
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )

    def get_config(self):
        config = super().get_config()
        config.pop("cell", None)
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def units(self):
        return self.cell.units
