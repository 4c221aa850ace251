"""Combining trained classifiers into one model."""

import keras
from keras import ops

from layers.base import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class AveragedProbabilities(keras.layers.Layer):
    """Averages N classifiers' class distributions; returns the average as logits.

        p   = (1 / N) sum_n softmax(z_n)
        out = log(max(p, epsilon))

    softmax(out) = p (up to epsilon), so whatever reads one member's logits
    (a softmax for probabilities, an argmax) reads the ensemble the same way.
    Averaging probabilities rather than logits keeps each member's confidence:
    one member's extreme logit cannot outvote the others.

    Input: a list of N logit tensors of one shape (..., classes) -> (..., classes).
    The mask of the first input (e.g. padding) is passed on.

    Args:
        epsilon: The smallest probability before the logarithm (keeps it finite).
    """

    def __init__(self, epsilon=1e-7, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.supports_masking = True

    def call(self, logits):
        if not isinstance(logits, (list, tuple)) or not logits:
            raise ValueError("AveragedProbabilities: expected a non-empty list of logit tensors.")
        probabilities = [ops.softmax(ops.cast(z, "float32"), axis=-1) for z in logits]
        mean = ops.mean(ops.stack(probabilities, axis=0), axis=0)
        return ops.log(ops.maximum(mean, self.epsilon))

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            return mask[0]
        return mask

    def compute_output_spec(self, logits):
        return keras.KerasTensor(logits[0].shape, dtype="float32")

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
