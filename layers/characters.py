"""A word read by its letters: a convolution over character embeddings, max-pooled per word."""

import keras
from keras import ops

from layers.base import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class CharacterFeatures(keras.layers.Layer):
    """Character CNN word features (Ma & Hovy 2016; dos Santos & Zadrozny 2014).

    For a word with character ids c_1..c_n (0 pads the word to `max_chars`):

        e_k = E[c_k]                         (E: alphabet_size x embedding_dim; e_k = 0 for padding)
        z_{k,f} = Σ_{j=-w..w} e_{k+j} · K_{j+w,:,f} + b_f     (w = width // 2; e = 0 outside the word)
        v_f = act(max_{k : c_k ≠ 0} z_{k,f})

    and v = 0 for a word without characters (padding). The features of
    letters ("-ville", "m80", "dtw") reach words the word vocabulary never
    saw, where a word embedding has only an OOV vector or a shape.

    Input: int ids (batch, time, max_chars) -> (batch, time, filters). The
    output mask marks the words that have a character (padding words do not),
    so it agrees with an `Embedding(mask_zero=True)` of the same words.

    Args:
        filters: Number of convolution filters (the output size).
        width: Odd number of characters each filter reads.
        embedding_dim: Size of a character's embedding.
        alphabet_size: Number of character ids, padding (0) included.
        activation: Applied after the max (monotone activations commute with it).
        embeddings_initializer, kernel_initializer, bias_initializer: As in Keras' layers.
    """

    def __init__(
        self,
        filters=50,
        width=3,
        embedding_dim=25,
        alphabet_size=256,
        activation="tanh",
        embeddings_initializer="uniform",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("filters", filters), ("embedding_dim", embedding_dim), ("alphabet_size", alphabet_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"CharacterFeatures: `{name}` must be a positive integer, got {value!r}.")
        if not isinstance(width, int) or width < 1 or width % 2 == 0:
            raise ValueError(f"CharacterFeatures: `width` must be an odd positive integer, got {width!r}.")
        self.filters = filters
        self.width = width
        self.embedding_dim = embedding_dim
        self.alphabet_size = alphabet_size
        self.activation = keras.activations.get(activation)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.alphabet_size, self.embedding_dim), initializer=self.embeddings_initializer
        )
        self.kernel = self.add_weight(
            name="kernel", shape=(self.width, self.embedding_dim, self.filters), initializer=self.kernel_initializer
        )
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer)

    def call(self, inputs, mask=None):
        ids = ops.cast(inputs, "int32")
        real = ops.not_equal(ids, 0)  # (batch, time, chars)
        batch, steps, chars = ops.shape(ids)[0], ops.shape(ids)[1], ops.shape(ids)[2]
        embedded = ops.take(self.embeddings, ids, axis=0) * ops.expand_dims(ops.cast(real, self.compute_dtype), -1)
        flat = ops.reshape(embedded, (-1, chars, self.embedding_dim))
        # "same" padding with an odd width: zeros on both sides, as the equations read e outside the word.
        convolved = ops.conv(flat, ops.cast(self.kernel, flat.dtype), strides=1, padding="same") + self.bias
        convolved = ops.reshape(convolved, (batch, steps, chars, self.filters))
        lowest = ops.full_like(convolved, -1e9)
        best = ops.max(ops.where(ops.expand_dims(real, -1), convolved, lowest), axis=2)
        has_chars = ops.expand_dims(ops.any(real, axis=-1), -1)
        return ops.where(has_chars, self.activation(best), ops.zeros_like(best))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.filters)

    def compute_mask(self, inputs, mask=None):
        return ops.any(ops.not_equal(inputs, 0), axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "width": self.width,
            "embedding_dim": self.embedding_dim,
            "alphabet_size": self.alphabet_size,
            "activation": keras.activations.serialize(self.activation),
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
