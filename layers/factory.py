"""One factory for every recurrent layer of the suite, so an app switches cells with one word."""

import keras

from layers.base import PACKAGE
from layers.elman import Elman
from layers.jordan import Jordan
from layers.peephole_lstm import PeepholeLSTM

# The lecture's cells first, then Keras' own (which keep their cuDNN path on a GPU).
CUSTOM_KINDS = ("elman", "jordan", "peephole_lstm")
BUILTIN_KINDS = ("simple_rnn", "lstm", "gru")
CELL_KINDS = CUSTOM_KINDS + BUILTIN_KINDS

_LAYER_CLASSES = {
    "elman": Elman,
    "jordan": Jordan,
    "peephole_lstm": PeepholeLSTM,
    "simple_rnn": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}


def check_kind(kind):
    if kind not in _LAYER_CLASSES:
        raise ValueError(f"Unknown cell kind {kind!r}: choose one of {', '.join(CELL_KINDS)}.")
    return kind


def recurrent_layer(
    kind,
    units,
    return_sequences=True,
    return_state=False,
    dropout=0.0,
    recurrent_dropout=0.0,
    output_units=None,
    name=None,
    **cell_kwargs,
):
    """One recurrent layer of `kind` (one of `CELL_KINDS`).

    `output_units` is the size of a Jordan cell's output (default: `units`);
    the other kinds ignore it. Keras' built-in layers get only arguments that
    keep them cuDNN-eligible unless the caller asks otherwise
    (`recurrent_dropout` > 0 or a non-default activation turns cuDNN off).
    """
    layer_class = _LAYER_CLASSES[check_kind(kind)]
    if kind == "jordan":
        cell_kwargs["output_units"] = output_units or units
    return layer_class(
        units,
        return_sequences=return_sequences,
        return_state=return_state,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        name=name,
        **cell_kwargs,
    )


def recurrent_cell(kind, units, output_units=None, name=None, **cell_kwargs):
    """One cell of `kind`, the cell `recurrent_layer` would wrap (for a loop of one's own, e.g. a decoder)."""
    return recurrent_layer(kind, units, output_units=output_units, name=name, **cell_kwargs).cell


@keras.saving.register_keras_serializable(package=PACKAGE)
class RecurrentStack(keras.layers.Layer):
    """`num_layers` recurrent layers of one kind, each optionally bidirectional.

    Input (batch, time, features) with an optional mask (e.g. from
    `Embedding(mask_zero=True)`), output (batch, time, width) when
    `return_sequences`, else (batch, width); width is `units` (`output_units`
    for Jordan), doubled when bidirectional with `merge_mode="concat"`.
    Layers below the last always return sequences. The mask passes through.

    With `return_state`, the output is `(outputs, states)`: `states[i]` is the list of
    layer i's final states (`[h]` for elman, simple_rnn and gru; `[y]`, the fed-back output,
    for jordan; `[h, c]` for lstm and peephole_lstm), the forward direction's followed by the
    backward direction's when bidirectional, as `keras.layers.Bidirectional` gives them.
    `initial_state`, a list with one such list (or None) per layer, starts each layer from
    those states: an encoder's `states` start a decoder of the same shape.

    Args:
        kind: One of `CELL_KINDS`: elman, jordan, peephole_lstm, simple_rnn, lstm, gru.
        units: Hidden size of each layer.
        num_layers: How many layers are stacked. Default 1.
        bidirectional: Wrap each layer in `keras.layers.Bidirectional`.
        merge_mode: How the two directions combine (Bidirectional's argument).
        return_sequences: Whether the last layer returns every step.
        return_state: Whether to return each layer's final states too.
        dropout, recurrent_dropout: Passed to every layer's cell.
        output_units: Output size of a Jordan cell (default `units`).
        cell_kwargs: Further cell arguments (activation, initializers, ...).
    """

    def __init__(
        self,
        kind,
        units,
        num_layers=1,
        bidirectional=False,
        merge_mode="concat",
        return_sequences=True,
        dropout=0.0,
        recurrent_dropout=0.0,
        output_units=None,
        cell_kwargs=None,
        return_state=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_kind(kind)
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"`num_layers` must be a positive integer, got {num_layers!r}.")
        self.kind = kind
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.output_units = output_units
        self.cell_kwargs = dict(cell_kwargs or {})
        self.supports_masking = True
        self.recurrent_layers = []
        for index in range(num_layers):
            layer = recurrent_layer(
                kind,
                units,
                return_sequences=return_sequences or index < num_layers - 1,
                return_state=return_state,
                dropout=dropout,
                recurrent_dropout=recurrent_dropout,
                output_units=output_units,
                name=f"{kind}_{index + 1}",
                **self.cell_kwargs,
            )
            if bidirectional:
                layer = keras.layers.Bidirectional(
                    layer, merge_mode=merge_mode, name=f"bidirectional_{kind}_{index + 1}"
                )
            self.recurrent_layers.append(layer)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.recurrent_layers:
            layer.build(shape)
            shape = (shape[0], shape[1], self._output_width(layer, shape))
        self.built = True

    def _output_width(self, layer, shape):
        output_shape = layer.compute_output_shape(shape)
        if self.return_state:  # (output shape, state shapes...)
            output_shape = output_shape[0]
        return output_shape[-1]

    def state_sizes(self):
        """The sizes of each layer's states: [[size, ...] per layer], in `states`' order."""
        sizes = []
        for layer in self.recurrent_layers:
            cell = (layer.forward_layer if self.bidirectional else layer).cell
            size = list(cell.state_size) if isinstance(cell.state_size, (list, tuple)) else [cell.state_size]
            sizes.append(size * (2 if self.bidirectional else 1))
        return sizes

    def call(self, inputs, initial_state=None, mask=None, training=None):
        if initial_state is not None and len(initial_state) != self.num_layers:
            raise ValueError(
                f"`initial_state` needs one list of states (or None) per layer: {self.num_layers}, "
                f"got {len(initial_state)}."
            )
        x = inputs
        states = []
        for index, layer in enumerate(self.recurrent_layers):
            start = None if initial_state is None else initial_state[index]
            outputs = layer(x, mask=mask, training=training, initial_state=start)
            if self.return_state:
                x, layer_states = outputs[0], list(outputs[1:])
                states.append(layer_states)
            else:
                x = outputs
        return (x, states) if self.return_state else x

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.recurrent_layers:
            width = self._output_width(layer, shape)
            shape = (shape[0], shape[1], width)
        output = shape if self.return_sequences else (shape[0], shape[2])
        if not self.return_state:
            return output
        return output, [[(shape[0], size) for size in sizes] for sizes in self.state_sizes()]

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if not self.return_state:
            return output_mask
        return output_mask, [[None] * len(sizes) for sizes in self.state_sizes()]

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "units": self.units,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "merge_mode": self.merge_mode,
            "return_sequences": self.return_sequences,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "output_units": self.output_units,
            "cell_kwargs": self.cell_kwargs,
            "return_state": self.return_state,
        }
