"""Decoding of per-step tag scores into the best tag sequence that obeys the tag scheme."""

import keras
from keras import ops

from layers.base import PACKAGE

# A forbidden transition's score: large enough to lose to any allowed path, finite so that
# sums stay free of inf - inf.
FORBIDDEN = -1e9


def scan_later_steps(step, initial, scores, mask):
    """`ops.scan` of `step(carry, step_scores, real)` over steps 2..T of (batch, time, tags) `scores`.

    `real` is (batch, 1) booleans from `mask` (batch, time). Scores and mask are
    scanned as one tensor, side by side: Keras' TensorFlow scan fails on several
    inputs whose length is unknown when traced (e.g. under predict_on_batch).
    Returns scan's (last carry, stacked outputs along time - 1).
    """
    joined = ops.concatenate([scores, ops.cast(mask, scores.dtype)[:, :, None]], axis=-1)

    def one_step(carry, inputs):
        return step(carry, inputs[:, :-1], inputs[:, -1:] > 0.5)

    return ops.scan(one_step, initial, ops.moveaxis(joined[:, 1:, :], 1, 0))


def bio_constraints(labels, num_special=0):
    """(allowed transitions (K, K) as nested lists of bool, allowed first tags (K,)) for IOB tags.

    `labels` are the tag names by id, the first `num_special` of them ids no
    tag may take (padding, OOV). `I-x` may follow only `B-x` or `I-x`, and may
    not start a sentence; `O` and `B-x` may follow anything.
    """
    labels = list(labels)

    def allowed(previous, current):
        if current < num_special or previous < num_special:
            return False
        tag = labels[current]
        if tag.startswith("I-"):
            return labels[previous][:2] in ("B-", "I-") and labels[previous][2:] == tag[2:]
        return True

    size = len(labels)
    transitions = [[allowed(p, c) for c in range(size)] for p in range(size)]
    first = [c >= num_special and not labels[c].startswith("I-") for c in range(size)]
    return transitions, first


@keras.saving.register_keras_serializable(package=PACKAGE)
class ViterbiDecoder(keras.layers.Layer):
    """The highest-scoring tag sequence whose transitions are allowed (Viterbi's algorithm).

    For per-step scores s_t(k) (log-probabilities: `log_softmax` of logits,
    or the log of probabilities), it returns

        argmax over y_1..y_T of  sum_t s_t(y_t)
        subject to  first[y_1]  and  allowed[y_{t-1}, y_t]  for t > 1,

    computed step by step: best_1(k) = s_1(k) (if first[k]),
    best_t(k) = max_j best_{t-1}(j) + s_t(k) over allowed j -> k, then
    backtracking from the best final tag. With IOB constraints
    (`bio_constraints`) an `I-x` never follows `O` or another type, the
    mistake a per-step argmax makes and conlleval punishes with a false chunk.

    Input (batch, time, tags) scores and a mask (batch, time) of the real
    steps (padding at the end); output (batch, time) int32 tag ids (a padded
    step repeats the last real one).

    With `learned_scores`, the decoder also adds a conditional random field's
    start and transition scores, s(y_1) + sum_t A(y_{t-1}, y_t), to the path
    score: it holds them as (non-trainable) weights, `copy_scores` sets them
    from a trained `ConditionalRandomField`, and a saved model keeps them.
    (Normalizing each step's scores with log_softmax subtracts the same
    amount from every path, so the best path is the CRF's.)

    Args:
        transitions: (tags, tags) booleans: transitions[i][j] allows tag j after tag i.
        first: (tags,) booleans: the tags a sequence may start with.
        scores: "logits" (normalized with log_softmax) or "probabilities" (logged).
        learned_scores: also add learned start and transition scores (default False).
    """

    def __init__(self, transitions, first, scores="logits", learned_scores=False, **kwargs):
        super().__init__(**kwargs)
        if scores not in ("logits", "probabilities"):
            raise ValueError(f"scores must be 'logits' or 'probabilities', got {scores!r}")
        self.transitions = [[bool(a) for a in row] for row in transitions]
        self.first = [bool(a) for a in first]
        size = len(self.first)
        if len(self.transitions) != size or any(len(row) != size for row in self.transitions):
            raise ValueError(f"transitions must be {size} x {size}, as many tags as `first` has")
        if not any(self.first):
            raise ValueError("no tag may start a sequence: `first` is all False")
        self.scores = scores
        self.learned_scores = bool(learned_scores)
        self.supports_masking = True

    def build(self, input_shape):
        if self.learned_scores:
            size = len(self.first)
            self.start_scores = self.add_weight(
                shape=(size,), initializer="zeros", trainable=False, name="start_scores"
            )
            self.transition_scores = self.add_weight(
                shape=(size, size), initializer="zeros", trainable=False, name="transition_scores"
            )

    def copy_scores(self, crf):
        """Take the start and transition scores of a `ConditionalRandomField` (its current values)."""
        if not self.learned_scores:
            raise ValueError("this decoder was made without learned_scores=True")
        if not self.built:
            self.build(None)
        self.start_scores.assign(ops.convert_to_numpy(crf.start_scores))
        self.transition_scores.assign(ops.convert_to_numpy(crf.transition_scores))

    def compute_mask(self, inputs, mask=None):
        return mask

    def call(self, scores, mask=None):
        scores = ops.cast(scores, "float32")
        if self.scores == "logits":
            log_probabilities = ops.log_softmax(scores, axis=-1)
        else:
            log_probabilities = ops.log(ops.maximum(scores, 1e-30))
        size = len(self.first)
        batch, steps = ops.shape(scores)[0], ops.shape(scores)[1]
        if mask is None:
            mask = ops.ones((batch, steps), dtype="bool")
        mask = ops.cast(mask, "bool")
        transitions = ops.where(ops.convert_to_tensor(self.transitions), 0.0, FORBIDDEN)
        first = ops.where(ops.convert_to_tensor(self.first), 0.0, FORBIDDEN)
        if self.learned_scores:
            transitions = transitions + ops.cast(self.transition_scores, "float32")
            first = first + ops.cast(self.start_scores, "float32")
        same_tag = ops.cast(ops.broadcast_to(ops.arange(size)[None, :], (batch, size)), "float32")

        def forward(best, step_scores, real):
            candidates = best[:, :, None] + transitions[None, :, :]  # (batch, previous, current)
            pointers = ops.cast(ops.argmax(candidates, axis=1), "float32")
            new_best = ops.max(candidates, axis=1) + step_scores
            # A padded step changes nothing: its best stays, its pointer is the same tag.
            return ops.where(real, new_best, best), ops.where(real, pointers, same_tag)

        start = log_probabilities[:, 0, :] + first[None, :]
        # pointers: (time - 1, batch, tags)
        best, pointers = scan_later_steps(forward, start, log_probabilities, mask)
        last = ops.cast(ops.argmax(best, axis=-1), "int32")

        def backward(current, step_pointers):
            step_pointers = ops.cast(step_pointers, "int32")
            previous = ops.take_along_axis(step_pointers, current[:, None], axis=1)[:, 0]
            return previous, current

        first_tag, later_tags = ops.scan(backward, last, pointers, reverse=True)
        return ops.concatenate([first_tag[:, None], ops.moveaxis(later_tags, 0, 1)], axis=1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def get_config(self):
        return {
            **super().get_config(),
            "transitions": self.transitions,
            "first": self.first,
            "scores": self.scores,
            "learned_scores": self.learned_scores,
        }
