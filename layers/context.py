"""Word context: each step sees its neighbours' embeddings (Mesnil et al., 2015), a vector of
its sentence, or statistics of its word in the whole document."""

import keras
import numpy as np
from keras import ops

from layers.base import PACKAGE

KEY_RANGE = 2**30  # unseen words' groups: vocabulary_size + key mod KEY_RANGE (int32)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ContextWindow(keras.layers.Layer):
    """Concatenates each step's vector with those of its `size // 2` neighbours on each side.

        out_t = [x_{t-k}; ...; x_t; ...; x_{t+k}],  k = size // 2

    Steps outside the sequence, and masked (padding) steps, count as zeros,
    so padding never leaks into a real word's window. A forward-only RNN fed
    these windows sees k words ahead, which is how Mesnil et al. (2015) gave
    their Elman and Jordan taggers right context.

    Input (batch, time, features) -> (batch, time, size * features); the mask passes through.

    Args:
        size: Odd positive window width; 1 is the identity.
    """

    def __init__(self, size=3, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise ValueError(f"ContextWindow: `size` must be an odd positive integer, got {size!r}.")
        self.size = size
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is not None:
            inputs = inputs * ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        if self.size == 1:
            return inputs
        k = self.size // 2
        padded = ops.pad(inputs, [[0, 0], [k, k], [0, 0]])
        steps = ops.shape(inputs)[1]
        shifted = [padded[:, offset : offset + steps, :] for offset in range(self.size)]
        return ops.concatenate(shifted, axis=-1)

    def compute_output_shape(self, input_shape):
        features = None if input_shape[-1] is None else input_shape[-1] * self.size
        return (*input_shape[:-1], features)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class AppendToSteps(keras.layers.Layer):
    """Appends one vector per sequence to every step of that sequence.

        out_t = [x_t; v]

    A tagger uses it to let each word's tag see a summary of the whole
    sentence (the vector its intent classifier reads), as joint intent and
    slot models do (e.g. Goo et al. 2018's slot gate, Qin et al. 2019).

    Inputs [(batch, time, features), (batch, vector)] -> (batch, time, features + vector);
    the steps' mask passes through.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        steps, vector = inputs
        tiled = ops.broadcast_to(
            ops.expand_dims(ops.cast(vector, steps.dtype), 1),
            (ops.shape(steps)[0], ops.shape(steps)[1], ops.shape(vector)[-1]),
        )
        return ops.concatenate([steps, tiled], axis=-1)

    def compute_output_shape(self, input_shape):
        steps, vector = input_shape
        features = None if steps[-1] is None or vector[-1] is None else steps[-1] + vector[-1]
        return (*steps[:-1], features)

    def compute_mask(self, inputs, mask=None):
        return mask[0] if isinstance(mask, (list, tuple)) else mask


@keras.saving.register_keras_serializable(package=PACKAGE)
class WordStatistics(keras.layers.Layer):
    """What a word is in its whole document, for each step: the features of KEA (Witten et al.
    1999) that a recurrent tagger cannot count by itself.

        out_t = [log(1 + n_t), idf[w_t], f_t]

    with w_t the word id at step t, g(w) its group (e.g. its stem, so "network" and
    "networks" count together), n_t the number of steps of the document whose word
    is in w_t's group, f_t the position of the group's first occurrence divided by
    the document's length, and idf the inverse document frequency of each word id.
    Padding steps (id 0) get zeros. A word whose group is 0 (the OOV id: a word
    the vocabulary never saw) is grouped by its key k_t instead, when keys are
    given: a hash of the word itself, so that an unseen word that occurs three
    times counts three, not once (`pipelines.text.token_keys`); without keys it
    stands alone.

    Input word ids (batch, time), or [word ids, keys] (both (batch, time), int) ->
    (batch, time, 3), masked where the id is 0.

    Args:
        vocabulary_size: Number of word ids (the tables' length).
    """

    def __init__(self, vocabulary_size, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size

    def build(self, input_shape):
        self.groups = self.add_weight(
            name="groups", shape=(self.vocabulary_size,), dtype="int32", initializer="zeros", trainable=False
        )
        self.idf = self.add_weight(name="idf", shape=(self.vocabulary_size,), initializer="zeros", trainable=False)

    def set_tables(self, groups, idf):
        self.groups.assign(np.asarray(groups, dtype="int32"))
        self.idf.assign(np.asarray(idf, dtype="float32"))

    def call(self, inputs):
        ids, keys = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        ids = ops.cast(ids, "int32")
        present = ops.cast(ids > 0, "float32")
        groups = ops.take(self.groups, ids)
        grouped = groups > 0
        if keys is not None:  # unseen words by their keys, in a range apart from the groups'
            grouped = ops.logical_or(grouped, ids > 0)
            keys = self.vocabulary_size + ops.mod(ops.cast(keys, "int32"), KEY_RANGE)
            groups = ops.where(groups > 0, groups, keys)
        steps = ops.shape(ids)[1]
        index = ops.arange(steps)
        same = ops.equal(ops.expand_dims(groups, 2), ops.expand_dims(groups, 1))
        same = ops.logical_and(same, ops.expand_dims(grouped, 2))
        itself = ops.equal(ops.expand_dims(index, 1), ops.expand_dims(index, 0))
        same = ops.logical_or(same, ops.expand_dims(itself, 0))  # each step is its own occurrence
        same = ops.logical_and(same, ops.expand_dims(ids > 0, 1))  # never counting padding
        count = ops.sum(ops.cast(same, "float32"), axis=2)
        first = ops.min(ops.where(same, ops.expand_dims(index, 0), steps), axis=2)
        length = ops.maximum(ops.sum(present, axis=1, keepdims=True), 1.0)
        features = [
            ops.log(1.0 + count),
            ops.take(self.idf, ids),
            ops.cast(first, "float32") / length,
        ]
        return ops.stack(features, axis=-1) * ops.expand_dims(present, -1)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            input_shape = input_shape[0]
        return (*input_shape, 3)

    def compute_mask(self, inputs, mask=None):
        # Padding stays masked when these features are concatenated to masked embeddings
        # (Concatenate reads an input without a mask as all valid).
        ids = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        return ops.not_equal(ids, 0)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WordDropout(keras.layers.Layer):
    """In training, replaces each real word id by the OOV id with probability `rate`.

        out_t = oov_id  if w_t > 0 and u_t < rate,  u_t ~ U(0, 1)
        out_t = w_t     otherwise (and always outside training)

    Every training word is in the vocabulary built from the training texts,
    so without it the OOV vector is never trained, and a model meets its first
    unseen word at test time; word dropout teaches it to read such a word
    from its context and its other features (e.g. `WordStatistics`, which
    reads the ids before the dropout).

    Input word ids (batch, time) -> the same ids, some replaced by `oov_id`.

    Args:
        rate: Probability of replacing each word, in [0, 1).
        oov_id: The id of the out-of-vocabulary word.
        seed: Seed of the random replacement.
    """

    def __init__(self, rate, oov_id=1, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"WordDropout: `rate` must be in [0, 1), got {rate!r}.")
        self.rate = rate
        self.oov_id = oov_id
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=False):
        if not training or self.rate == 0:
            return ids
        dropped = keras.random.uniform(ops.shape(ids), seed=self.seed_generator) < self.rate
        dropped = ops.logical_and(dropped, ops.not_equal(ids, 0))
        return ops.where(dropped, ops.cast(self.oov_id, ids.dtype), ids)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "oov_id": self.oov_id, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SwapNeighbours(keras.layers.Layer):
    """In training, swaps some pairs of neighbouring real words: a denoising auto-encoder's
    input noise that breaks local order (Lample et al. 2018's local shuffle, in its simplest form).

        s_t = u_t < rate and t + 1 < length and not s_{t-1}'s draw,  u_t ~ U(0, 1)
        out_t = w_{t+1} if s_t;  w_{t-1} if s_{t-1};  w_t otherwise (and always outside training)

    A word moves at most one place, and no pair overlaps another.

    Input word ids (batch, time), padded with 0 -> the same shape.

    Args:
        rate: Probability that a word swaps places with the next one, in [0, 1).
        seed: Seed of the draws.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"SwapNeighbours: `rate` must be in [0, 1), got {rate!r}.")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=False):
        if not training or self.rate == 0:
            return ids
        steps = ops.shape(ids)[1]
        lengths = ops.sum(ops.cast(ops.not_equal(ids, 0), "int32"), axis=1, keepdims=True)
        positions = ops.expand_dims(ops.arange(steps, dtype="int32"), 0)
        drawn = keras.random.uniform(ops.shape(ids), seed=self.seed_generator) < self.rate
        drawn = ops.logical_and(drawn, positions + 1 < lengths)
        before = ops.pad(drawn[:, :-1], [[0, 0], [1, 0]])  # the draw at t - 1
        swap = ops.logical_and(drawn, ops.logical_not(before))
        swapped_before = ops.pad(swap[:, :-1], [[0, 0], [1, 0]])
        source = positions + ops.cast(swap, "int32") - ops.cast(swapped_before, "int32")
        return ops.take_along_axis(ids, source, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
