"""Many-to-one: from a recurrent layer's outputs at every step to one vector per sequence."""

import keras
from keras import ops

from layers.base import PACKAGE

POOLING_MODES = ("last", "mean", "attention")


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionPooling(keras.layers.Layer):
    """Attention pooling over time (Yang et al. 2016, one query vector):

        u_t = tanh(h_t · W + b),  a = softmax_t(u_t · v)  over unmasked steps,
        pooled = Σ_t a_t h_t

    Input (batch, time, features) with an optional mask; returns
    `(pooled (batch, features), weights (batch, time))`. The weights say how
    much each step counted (0 at padding), which `predict --explain` shows.

    Args:
        units: Size of u_t (the attention's hidden layer).
    """

    def __init__(self, units=64, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.query = self.add_weight(name="query", shape=(self.units,))

    def call(self, inputs, mask=None):
        scores = ops.tensordot(ops.tanh(ops.matmul(inputs, self.kernel) + self.bias), self.query, axes=1)
        if mask is not None:
            scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=-1)
        if mask is not None:
            weights = weights * ops.cast(mask, weights.dtype)
        pooled = ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)
        return pooled, weights

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "units": self.units}
