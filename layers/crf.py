"""A linear-chain conditional random field over per-step tag scores, and its training loss."""

import keras
from keras import initializers, ops

from layers.base import PACKAGE
from layers.decoding import scan_later_steps


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConditionalRandomField(keras.layers.Layer):
    """Learned scores of tag transitions on top of per-step tag scores (Lafferty et al. 2001).

    For per-step scores e_t(k) (the emissions: logits of a Dense layer), a
    start score s(k) and a transition score A(j, k) of tag k after tag j, the
    tag sequence y_1..y_T of a sentence has the score

        score(y) = s(y_1) + sum_t e_t(y_t) + sum_{t>1} A(y_{t-1}, y_t)

    and the probability p(y) = exp(score(y)) / Z with Z summed over every
    sequence of the sentence's length, by the forward algorithm:

        alpha_1(k) = s(k) + e_1(k)
        alpha_t(k) = e_t(k) + logsumexp_j (alpha_{t-1}(j) + A(j, k))
        log Z      = logsumexp_k alpha_T(k)

    The layer passes the emissions through unchanged (with their mask) and
    holds `start_scores` (tags,) and `transition_scores` (tags, tags); its
    `loss()` trains them with the rest of the model (the negative
    log-likelihood of the gold sequence), and `ViterbiDecoder(...,
    learned_scores=True)` decodes with them after `copy_scores(this layer)`.
    With both at zero, log p(y) is the sum of per-step log-softmax scores: a
    softmax tagger's cross-entropy.

    Args:
        num_tags: how many tags the emissions score (their last axis).
        transitions_initializer: initializer of both score tables (default zeros).
    """

    def __init__(self, num_tags, transitions_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.num_tags = int(num_tags)
        self.transitions_initializer = initializers.get(transitions_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.num_tags:
            raise ValueError(f"the emissions score {input_shape[-1]} tags, the layer was made for {self.num_tags}")
        self.start_scores = self.add_weight(
            shape=(self.num_tags,), initializer=self.transitions_initializer, name="start_scores"
        )
        self.transition_scores = self.add_weight(
            shape=(self.num_tags, self.num_tags), initializer=self.transitions_initializer, name="transition_scores"
        )

    def call(self, emissions):
        return emissions

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def log_likelihood(self, emissions, tags, mask):
        """log p(tags) of each sequence (batch,), over its real steps (mask: padding at the end)."""
        emissions = ops.cast(emissions, "float32")
        tags = ops.cast(tags, "int32")
        mask = ops.cast(mask, "float32")
        transitions = ops.cast(self.transition_scores, "float32")
        start = ops.cast(self.start_scores, "float32")

        # The gold sequence's score.
        gold_emissions = ops.take_along_axis(emissions, tags[:, :, None], axis=2)[:, :, 0]
        pair_scores = ops.take(ops.reshape(transitions, (-1,)), tags[:, :-1] * self.num_tags + tags[:, 1:])
        gold = (
            ops.take(start, tags[:, 0])
            + ops.sum(gold_emissions * mask, axis=1)
            + ops.sum(pair_scores * mask[:, 1:], axis=1)
        )

        # log Z by the forward algorithm; a padded step keeps alpha as it was.
        def forward(alpha, step_emissions, real):
            candidates = alpha[:, :, None] + transitions[None, :, :]  # (batch, previous, current)
            new_alpha = ops.logsumexp(candidates, axis=1) + step_emissions
            return ops.where(real, new_alpha, alpha), None

        alpha, _ = scan_later_steps(forward, start[None, :] + emissions[:, 0, :], emissions, mask)
        return gold - ops.logsumexp(alpha, axis=1)

    def loss(self, padding_id=0):
        """The loss that trains this layer and the emissions below it (see `SequenceLikelihoodLoss`)."""
        return SequenceLikelihoodLoss(self, padding_id)

    def get_config(self):
        return {
            **super().get_config(),
            "num_tags": self.num_tags,
            "transitions_initializer": initializers.serialize(self.transitions_initializer),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class SequenceLikelihoodLoss(keras.losses.Loss):
    """-log p(gold tags) under a `ConditionalRandomField`, spread over each sentence's words.

    Targets are tag ids, `padding_id` past each sentence's end. Each real word
    of a sentence of length n gets -log p / n, so the sentence's words add up
    to its negative log-likelihood, and Keras reduces the batch as it reduces a
    per-word cross-entropy (with the same sample weights, 0 on padding): the
    two are on one scale, and equal when the CRF's scores are 0.
    The loss reads the layer's current scores, so its config cannot hold the
    layer: a model loaded from a file keeps the loss's name and padding id, and
    training it again needs `compile(loss=crf.loss())` with its own layer.
    """

    def __init__(self, crf=None, padding_id=0, name="crf_negative_log_likelihood", **kwargs):
        super().__init__(name=name, **kwargs)
        self.crf = crf
        self.padding_id = padding_id

    def get_config(self):
        return {**super().get_config(), "padding_id": self.padding_id}

    def call(self, y_true, y_pred):
        if self.crf is None:
            raise ValueError(
                "this SequenceLikelihoodLoss has no ConditionalRandomField (it was loaded from a "
                "saved model): compile again with loss=the_model's_crf_layer.loss()"
            )
        tags = ops.cast(y_true, "int32")
        real = ops.not_equal(tags, self.padding_id)
        # Padding positions take tag 0 in the gold path; they are masked out of every sum.
        tags = ops.where(real, tags, 0)
        lengths = ops.maximum(ops.sum(ops.cast(real, "float32"), axis=1), 1.0)
        per_word = -self.crf.log_likelihood(y_pred, tags, real) / lengths
        return ops.where(real, per_word[:, None], 0.0)
