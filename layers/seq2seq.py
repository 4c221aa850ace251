"""The encoder-decoder of sequence-to-sequence learning: attention, the decoder, the bridge between.

    source ids -> embedding -> RecurrentStack (any cell kind)  = memory (batch, S, D)
                                    | final outputs -> Bridge   = the decoder's initial states
    previous target ids -> embedding [+ memory at the next unconsumed source step]
                        -> AttentionDecoder (any cell kind, attention over the memory)
                        -> Dense -> logits of the next target

Keras 3's `RNN` no longer hands a cell `constants`, so `AttentionDecoder` runs its own time
loop (`backend.rnn`, the loop of `keras.layers.RNN` on every backend) around any cell, with the
memory closed over; without input feeding nothing in the loop reads the memory, and the whole
target sequence goes through the Keras layer of the cell (keeping LSTM's and GRU's fused and
cuDNN paths), attention then reading all steps at once. The same `step` serves generation
(`layers.generation`) one token at a time.
"""

import keras
from keras import ops
from keras.src import backend
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

from layers.base import PACKAGE
from layers.factory import check_kind, recurrent_layer

SCORES = ("additive", "multiplicative")
# A masked step's score: softmax gives it a weight of exactly 0, and sums stay finite.
MASKED = -1e9


class ReadsMask(keras.layers.Layer):
    """A layer that takes the source mask as an argument of its own: Keras' implicit masks of its
    inputs are accepted without a warning, and it returns none."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, *args, **kwargs):
        return None


@keras.saving.register_keras_serializable(package=PACKAGE)
class Attention(ReadsMask):
    """Attention of queries over a memory, with Bahdanau's or Luong's score.

        additive (Bahdanau et al. 2015):   e_ts = v · tanh(q_t · W_q + m_s · W_m)
        multiplicative (Luong et al. 2015, "general"):   e_ts = (q_t · W) · m_s
        a_t = softmax_s(e_t) over unmasked steps s,   c_t = Σ_s a_ts m_s

    `keys(memory)` is the part of the score that depends on the memory alone (m · W_m, or m
    itself), computed once per sequence; `attend(query, keys, memory, mask)` scores one step
    (batch, query_dim) or many (batch, T, query_dim) and returns (context, weights).

    Args:
        score: "additive" or "multiplicative".
        units: Size of the additive score's hidden layer (ignored by "multiplicative").
    """

    def __init__(self, score="additive", units=128, **kwargs):
        super().__init__(**kwargs)
        if score not in SCORES:
            raise ValueError(f"Unknown attention score {score!r}: choose one of {', '.join(SCORES)}.")
        self.score = score
        self.units = units

    def build(self, query_shape, memory_shape):
        query_dim, memory_dim = query_shape[-1], memory_shape[-1]
        if self.score == "additive":
            self.query_kernel = self.add_weight(name="query_kernel", shape=(query_dim, self.units))
            self.memory_kernel = self.add_weight(name="memory_kernel", shape=(memory_dim, self.units))
            self.scale = self.add_weight(name="scale", shape=(self.units,))
        else:
            self.kernel = self.add_weight(name="kernel", shape=(query_dim, memory_dim))

    def keys(self, memory):
        return ops.matmul(memory, self.memory_kernel) if self.score == "additive" else memory

    def scores(self, query, keys):
        """e (batch, T, S) for queries (batch, T, query_dim)."""
        if self.score == "additive":
            hidden = ops.tanh(ops.expand_dims(ops.matmul(query, self.query_kernel), 2) + ops.expand_dims(keys, 1))
            return ops.tensordot(hidden, self.scale, axes=1)
        return ops.matmul(ops.matmul(query, self.kernel), ops.transpose(keys, (0, 2, 1)))

    def attend(self, query, keys, memory, mask=None):
        single = len(query.shape) == 2
        if single:
            query = ops.expand_dims(query, 1)
        scores = self.scores(query, keys)
        if mask is not None:
            scores = ops.where(ops.expand_dims(mask, 1), scores, ops.full_like(scores, MASKED))
        weights = ops.softmax(scores, axis=-1)
        context = ops.matmul(weights, memory)
        if single:
            return context[:, 0], weights[:, 0]
        return context, weights

    def call(self, query, memory, mask=None):
        return self.attend(query, self.keys(memory), memory, mask)

    def get_config(self):
        return {**super().get_config(), "score": self.score, "units": self.units}


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionDecoder(ReadsMask):
    """A recurrent decoder of any cell kind, with attention over the encoder's memory (Luong et al. 2015).

        x'_t = [x_t ; h~_{t-1}]          (input feeding; x'_t = x_t without it)
        h_t, states_t = cell(x'_t, states_{t-1})
        c_t, a_t = attention(h_t, memory)               (masked, `Attention`)
        h~_t = tanh([c_t ; h_t] · W_c)                  (the attentional vector; h~_0 = 0)
        output_t = h~_t

    Without attention (`attention=None`, the lecture's fixed-vector encoder-decoder), the
    output is h_t and the memory is read only through the initial states. The cell's output
    is h_t (a Jordan cell's is its output y_t, which it feeds back).

    Call arguments:
        inputs: (batch, T, features), the step inputs (embedded previous targets).
        memory: (batch, S, memory_dim), the encoder outputs.
        initial_state: the cell's initial states (e.g. from `Bridge`).
        memory_mask: (batch, S) booleans, True at real steps.
        training: Whether dropout applies (to h~_t, and the cell's own).

    Args:
        kind: One of `layers.CELL_KINDS`.
        units: The cell's size and that of h~_t.
        attention: "additive", "multiplicative" or None.
        input_feeding: Feed h~_{t-1} with x_t (only with attention).
        attention_units: Size of the additive score's hidden layer (default: `units`).
        dropout: Dropout on h~_t (as Luong et al. and Vinyals et al.; the cell's own dropout
            goes in `cell_kwargs`).
        seed: Seed of that dropout.
        cell_kwargs: Further arguments of the cell (`dropout`, `recurrent_dropout`, `output_units`, ...).
    """

    def __init__(
        self,
        kind,
        units,
        attention="additive",
        input_feeding=True,
        attention_units=None,
        dropout=0.0,
        seed=None,
        cell_kwargs=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_kind(kind)
        if attention is not None and attention not in SCORES:
            raise ValueError(f"Unknown attention {attention!r}: choose one of {', '.join(SCORES)} or None.")
        self.kind = kind
        self.units = units
        self.attention = attention
        self.input_feeding = bool(input_feeding and attention)
        self.attention_units = attention_units or units
        self.dropout = dropout
        self.seed = seed
        self.cell_kwargs = dict(cell_kwargs or {})
        self.recurrent = recurrent_layer(kind, units, return_sequences=True, name="recurrent", **self.cell_kwargs)
        self.cell = self.recurrent.cell
        self.attention_layer = None
        if attention:
            self.attention_layer = Attention(attention, self.attention_units, name="attention")
            self.combine = keras.layers.Dense(units, activation="tanh", use_bias=False, name="combine")
        self.output_dropout = keras.layers.Dropout(dropout, seed=seed, name="output_dropout")

    @property
    def output_size(self):
        return self.units if self.attention else self.cell.output_size

    @property
    def state_sizes(self):
        size = self.cell.state_size
        return list(size) if isinstance(size, (list, tuple)) else [size]

    def build(self, inputs_shape, memory_shape, *args, **kwargs):
        batch, features = inputs_shape[0], inputs_shape[-1]
        step_features = features + (self.units if self.input_feeding else 0)
        self.recurrent.build((batch, None, step_features))
        if self.attention:
            cell_output = self.cell.output_size
            self.attention_layer.build((batch, None, cell_output), memory_shape)
            self.combine.build((batch, None, cell_output + memory_shape[-1]))

    # One step, shared by training (inside the loop) and generation ------------------------
    def initial_feed(self, batch_size, dtype="float32"):
        """h~_0: zeros (batch, units)."""
        return ops.zeros((batch_size, self.units), dtype=dtype)

    def memory_keys(self, memory):
        return self.attention_layer.keys(memory) if self.attention else None

    def attentional(self, cell_outputs, memory, keys, memory_mask):
        """(h~, attention weights) for cell outputs of one step (batch, units) or many (batch, T, units)."""
        context, weights = self.attention_layer.attend(cell_outputs, keys, memory, memory_mask)
        return self.combine(ops.concatenate([context, cell_outputs], axis=-1)), weights

    def step(self, inputs, states, feed, memory, keys, memory_mask=None, training=False):
        """One step: (output (batch, output_size), attention weights or None, new states, new feed)."""
        if self.input_feeding:
            inputs = ops.concatenate([inputs, feed], axis=-1)
        output, new_states = self.cell(inputs, states, training=training)
        new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
        if not self.attention:
            return output, None, new_states, feed
        vector, weights = self.attentional(output, memory, keys, memory_mask)
        return vector, weights, new_states, vector

    # The whole sequence, for training ----------------------------------------------------
    def call(self, inputs, memory, initial_state, memory_mask=None, training=None):
        initial_state = list(initial_state)
        if not self.input_feeding:
            outputs = self.recurrent(inputs, initial_state=initial_state, training=training)
            if self.attention:
                outputs, _ = self.attentional(outputs, memory, self.memory_keys(memory), memory_mask)
            return self.output_dropout(outputs, training=training)
        keys = self.memory_keys(memory)
        feed = self.initial_feed(ops.shape(inputs)[0], inputs.dtype)
        self._prepare_dropout_masks(inputs, feed, initial_state, training)

        def one_step(step_inputs, carried):
            vector, _, new_states, _ = self.step(
                step_inputs, carried[:-1], carried[-1], memory, keys, memory_mask, training=training
            )
            return vector, new_states + [vector]

        _, outputs, _ = backend.rnn(one_step, inputs, initial_state + [feed], input_length=inputs.shape[1])
        if isinstance(self.cell, DropoutRNNCell):
            self.cell.reset_dropout_mask()
        return self.output_dropout(outputs, training=training)

    def _prepare_dropout_masks(self, inputs, feed, states, training):
        """Draws a cell's dropout masks before the loop, as `keras.layers.RNN` does: drawn inside
        it, they would be made in the loop's graph and cached outside."""
        if not training or not isinstance(self.cell, DropoutRNNCell):
            return
        self.cell.reset_dropout_mask()
        if getattr(self.cell, "dropout", 0) > 0:
            self.cell.get_dropout_mask(ops.concatenate([inputs[:, 0], feed], axis=-1))
        if getattr(self.cell, "recurrent_dropout", 0) > 0:
            self.cell.get_recurrent_dropout_mask(states[0])

    def compute_output_shape(self, inputs_shape, *args, **kwargs):
        return (inputs_shape[0], inputs_shape[1], self.output_size)

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "units": self.units,
            "attention": self.attention,
            "input_feeding": self.input_feeding,
            "attention_units": self.attention_units,
            "dropout": self.dropout,
            "seed": self.seed,
            "cell_kwargs": self.cell_kwargs,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class FinalOutputs(ReadsMask):
    """An encoder's summary of a sequence: its output at the last real step, and, when
    bidirectional, the backward half's output at the first step (where it ends).

    Input (batch, S, D) outputs and (batch, S) mask; output (batch, D).

    Args:
        bidirectional: Whether the second half of D is a backward direction's.
    """

    def __init__(self, bidirectional=False, **kwargs):
        super().__init__(**kwargs)
        self.bidirectional = bidirectional

    def call(self, outputs, source_mask):
        lengths = ops.sum(ops.cast(source_mask, "int32"), axis=1)
        last = ops.one_hot(ops.maximum(lengths - 1, 0), ops.shape(outputs)[1], dtype=outputs.dtype)
        at_last = ops.einsum("bs,bsd->bd", last, outputs)
        if not self.bidirectional:
            return at_last
        half = outputs.shape[-1] // 2
        return ops.concatenate([at_last[:, :half], outputs[:, 0, half:]], axis=-1)

    def get_config(self):
        return {**super().get_config(), "bidirectional": self.bidirectional}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Bridge(keras.layers.Layer):
    """The encoder's summary mapped to each of the decoder's initial states: s_i = tanh(z · W_i + b_i).

    Encoders and decoders of different sizes and cell kinds meet here (an LSTM's [h, c], a
    GRU's [h], a Jordan cell's [y]).

    Args:
        state_sizes: The decoder cell's state sizes, in its order.
    """

    def __init__(self, state_sizes, **kwargs):
        super().__init__(**kwargs)
        self.state_sizes = [int(size) for size in state_sizes]
        self.projections = [
            keras.layers.Dense(size, activation="tanh", name=f"state_{i}") for i, size in enumerate(self.state_sizes)
        ]

    def build(self, input_shape):
        for projection in self.projections:
            projection.build(input_shape)

    def call(self, summary):
        return [projection(summary) for projection in self.projections]

    def compute_output_shape(self, input_shape):
        return [(input_shape[0], size) for size in self.state_sizes]

    def get_config(self):
        return {**super().get_config(), "state_sizes": self.state_sizes}


@keras.saving.register_keras_serializable(package=PACKAGE)
class NextSourceStep(ReadsMask):
    """The memory at the next unconsumed source step, for each decoder step.

    Some outputs consume the input in order, one `advance_id` token per source step (a
    parser's `XX` per word). Step t's input is target t-1, and the source steps consumed
    before step t are the `advance_id` tokens among targets 1..t-1, so step t reads

        p_t = #{i < t : target_i = advance_id},   out_t = memory[p_t]   (zeros once p_t >= length)

    which tells the decoder where it is instead of leaving it to count (Vinyals et al.'s
    parser drifted off its words that way). Input: (batch, T) previous-target ids (the
    decoder's inputs, start token first), (batch, S, D) memory, (batch, S) mask.

    Args:
        advance_id: The id of the token that consumes one source step.
    """

    def __init__(self, advance_id, **kwargs):
        super().__init__(**kwargs)
        self.advance_id = int(advance_id)

    def call(self, previous_ids, memory, source_mask):
        consumed = ops.cumsum(ops.cast(ops.equal(previous_ids, self.advance_id), "int32"), axis=1)
        return self.at(consumed, memory, source_mask)

    @staticmethod
    def at(positions, memory, mask):
        """memory[positions] (zeros where a position is past the end); positions (batch, T) or (batch,)."""
        real = ops.cast(mask, memory.dtype)
        pick = ops.one_hot(positions, ops.shape(memory)[1], dtype=memory.dtype)
        if len(positions.shape) == 1:
            return ops.einsum("bs,bsd->bd", pick * real, memory)
        return ops.einsum("bts,bsd->btd", pick * ops.expand_dims(real, 1), memory)

    def get_config(self):
        return {**super().get_config(), "advance_id": self.advance_id}
