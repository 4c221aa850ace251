"""Connectionist temporal classification (Graves et al. 2006): loss and decoding.

The network emits, per frame, a distribution over the labels and a "blank"
(class 0 here). A label sequence's probability sums over every frame-level
path that reduces to it when repeats are merged and blanks removed, so
"1 1" needs a blank between its two 1s while "1" does not.
"""

import keras
import numpy as np
from keras import ops

from layers.base import PACKAGE

BLANK = 0


def pack_targets(frames, labels, label_lengths):
    """y_true for `CTCLoss`: [frames, label length, labels...] per example (int32)."""
    return ops.concatenate([ops.expand_dims(frames, 1), ops.expand_dims(label_lengths, 1), labels], axis=1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CTCLoss(keras.losses.Loss):
    """CTC negative log-likelihood with each example's own frame count and label length.

    y_true: (batch, 2 + max_labels) as `pack_targets` makes it, labels in
    1..C-1 (0 is the blank); y_pred: logits (batch, frames, C). Unlike
    `keras.losses.CTC`, which takes every example's padded length as its
    length, padding frames and padding labels are left out.
    """

    def __init__(self, name="ctc", reduction="sum_over_batch_size", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        return ops.ctc_loss(
            target=y_true[:, 2:],
            output=y_pred,
            target_length=y_true[:, 1],
            output_length=y_true[:, 0],
            mask_index=BLANK,
        )


def greedy_decode(scores, length):
    """Best path: the most likely class per frame, repeats merged, blanks removed."""
    best = np.argmax(np.asarray(scores)[:length], axis=-1)
    decoded, previous = [], None
    for label in best:
        if label != previous and label != BLANK:
            decoded.append(int(label))
        previous = label
    return decoded


def beam_decode(logits, lengths, beam_width):
    """Beam search over the whole batch (`keras.ops.ctc_decode`); a list of label lists."""
    decoded, _ = ops.ctc_decode(
        logits, lengths, strategy="beam_search", beam_width=beam_width, top_paths=1, mask_index=BLANK
    )
    best = ops.convert_to_numpy(decoded)[0]
    return [[int(label) for label in row if label >= 0] for row in best]


def edit_distance(reference, hypothesis):
    """Levenshtein distance: the fewest insertions, deletions and substitutions."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, start=1):
        current = [i]
        for j, hyp in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


@keras.saving.register_keras_serializable(package=PACKAGE)
class FrameMask(keras.layers.Layer):
    """(sequence (batch, steps, ...), input lengths (batch,)) -> mask (batch, steps).

    A step is real when it is below the input length divided by `stride`,
    rounded up: the frames a strided layer made from the real input frames.
    """

    def __init__(self, stride=1, **kwargs):
        super().__init__(**kwargs)
        self.stride = stride

    def call(self, sequence, lengths):
        lengths = (ops.cast(lengths, "int32") + self.stride - 1) // self.stride
        steps = ops.arange(ops.shape(sequence)[1], dtype="int32")
        return ops.less(ops.expand_dims(steps, 0), ops.expand_dims(lengths, 1))

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}


@keras.saving.register_keras_serializable(package=PACKAGE)
class DropMask(keras.layers.Layer):
    """The identity, without the mask: the CTC loss takes frame counts, not a per-frame mask."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        # A new tensor: the input object itself still carries its mask.
        return ops.copy(inputs)

    def compute_mask(self, inputs, mask=None):
        return None
