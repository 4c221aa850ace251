"""Word context windows (Mesnil et al., 2015): each step sees its neighbours' embeddings."""

import keras
from keras import ops

from layers.base import PACKAGE


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
