"""N-gram classifier scores as a Keras layer, to sit beside a recurrent one.

`NgramScores` holds a table of per-n-gram class scores and sums, for each
text, the entries of the distinct n-grams it holds (word n-grams of word ids,
or character n-grams of each word's characters), plus a bias. The table is
fitted outside Keras, in `fitting.ngrams`: multinomial naive Bayes or NBSVM
(Wang & Manning 2012); the equations are written there.

Character n-grams (`unit="chars"`): each word's characters between
word-boundary marks, n = min_n..max_n, counted once per text, as
scikit-learn's `char_wb` analyzer cuts them (" movie " -> " m", "mo", ...,
"ie "), which reach words the vocabulary never saw.
"""

from functools import lru_cache

import keras
import numpy as np
from keras import ops

from layers.base import PACKAGE

MAX_ORDER = 3


def ngram_keys(ids, max_n, base, min_n=1):
    """The distinct n-gram keys (n = min_n..max_n) of one id sequence; ids 0 (padding) end it.

    A key is the n-gram's ids read as digits in base `base` (the vocabulary
    size). Ids are >= 1, so keys of different orders never coincide.
    """
    ids = [int(i) for i in ids]
    if 0 in ids:
        ids = ids[: ids.index(0)]
    keys = set()
    for n in range(min_n, max_n + 1):
        for start in range(len(ids) - n + 1):
            key = 0
            for word in ids[start : start + n]:
                key = key * base + word
            keys.add(key)
    return keys


def char_ngram_keys(words, min_n, max_n, base):
    """The distinct character n-gram keys (n = min_n..max_n) of one text, from its words'
    character ids (words, max_chars), ids >= 1 and 0 after a word's end.

    Each word is read between two boundary marks (id `base` - 1); a key is the
    n-gram's ids read as digits in base `base`. Words without characters
    (padding) hold none.
    """
    keys = set()
    for row in np.asarray(words):
        keys.update(_word_char_keys(tuple(int(c) for c in row if c > 0), min_n, max_n, base))
    return keys


@lru_cache(maxsize=500_000)
def _word_char_keys(chars, min_n, max_n, base):
    if not chars:
        return frozenset()
    return frozenset(ngram_keys((base - 1, *chars, base - 1), max_n, base, min_n))


def text_ngram_keys(texts, unit, min_n, max_n, base):
    """Each text's distinct n-gram keys: `texts` word-id sequences (unit "words", n = 1..max_n) or
    per text the words' character ids (unit "chars", n = min_n..max_n; see `char_ngram_keys`)."""
    if unit == "words":
        return [ngram_keys(s, max_n, base) for s in texts]
    return [char_ngram_keys(words, min_n, max_n, base) for words in texts]


def check_order(unit, min_n, max_n, base):
    """Rejects n-gram orders the layer cannot key: word n-grams up to MAX_ORDER, keys below 2**62."""
    if unit not in ("words", "chars"):
        raise ValueError(f"unit must be 'words' or 'chars', got {unit!r}")
    if unit == "words" and not 1 <= max_n <= MAX_ORDER:
        raise ValueError(f"max_n must be in 1..{MAX_ORDER}, got {max_n}")
    if unit == "words" and min_n != 1:
        raise ValueError(f"word n-grams start at 1, got min_n = {min_n}")
    if not 1 <= min_n <= max_n:
        raise ValueError(f"n-gram orders must satisfy 1 <= min_n <= max_n, got {min_n}..{max_n}")
    if base**max_n >= 2**62:
        raise ValueError(f"a vocabulary of {base} symbols is too large for {max_n}-gram keys")


def int64_available():
    """Whether the backend computes int64 as int64 (JAX does only with its x64 flag on)."""
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


@keras.saving.register_keras_serializable(package=PACKAGE)
class NgramScores(keras.layers.Layer):
    """Word ids (batch, time), 0 = padding -> n-gram classifier scores (batch, num_labels); with
    `unit="chars"`, the words' character ids (batch, time, max_chars) -> scores of their
    character n-grams (`char_ngram_keys`).

    Each distinct n-gram of a text counts once; n-grams outside the table add
    nothing. Columns of labels that are not `classes` stay 0. The keys are
    int64: under JAX that needs `JAX_ENABLE_X64=1` once base ** max_n passes
    2**31 (bigrams of a vocabulary over 46,000 words); without it JAX computes
    them in int32.

    Args:
        num_labels: Width of the output (the classifier's label ids).
        classes: The label ids the table scores.
        max_n: Longest n-gram.
        base: Vocabulary size (n-gram keys are ids read in this base); for characters the
            alphabet's size + 1, the last id marking word boundaries.
        size: Number of n-grams in the table.
        unit: "words" or "chars": what the n-grams are made of.
        min_n: Shortest n-gram (1 for words).
    """

    def __init__(self, num_labels, classes, max_n, base, size, unit="words", min_n=1, **kwargs):
        super().__init__(**kwargs)
        check_order(unit, min_n, max_n, base)
        if base**max_n >= 2**31 and not int64_available():
            raise ValueError(
                f"NgramScores: {max_n}-gram keys of a {base}-symbol {unit} vocabulary pass 2**31, and "
                "JAX computes int64 in int32 unless its 64-bit types are on, which would mix n-grams up: "
                "set JAX_ENABLE_X64=1, use another Keras backend, or a lower --naive-bayes order "
                "(--char-ngrams 0 for character n-grams)."
            )
        self.num_labels, self.classes = num_labels, list(classes)
        self.max_n, self.base, self.size = max_n, base, size
        self.unit, self.min_n = unit, min_n

    def build(self, input_shape):
        self.keys = self.add_weight(
            name="keys", shape=(self.size,), dtype="int64", initializer="zeros", trainable=False
        )
        self.log_theta = self.add_weight(
            name="log_theta", shape=(self.size, len(self.classes)), initializer="zeros", trainable=False
        )
        self.log_prior = self.add_weight(
            name="log_prior", shape=(len(self.classes),), initializer="zeros", trainable=False
        )

    def set_table(self, keys, log_theta, log_prior):
        keys = np.asarray(keys, dtype="int64")
        if np.any(np.diff(keys) <= 0):
            raise ValueError("n-gram keys must be sorted and distinct")
        self.keys.assign(keys)
        self.log_theta.assign(np.asarray(log_theta, dtype="float32"))
        self.log_prior.assign(np.asarray(log_prior, dtype="float32"))

    def scale(self, factor):
        """Multiplies every score by `factor` (a weight fitted for the layer's scores)."""
        self.log_theta.assign(self.log_theta * factor)
        self.log_prior.assign(self.log_prior * factor)

    def keys_of(self, ids):
        """(keys, valid), each (batch, positions): the key of the n-gram ending at each position."""
        if self.unit == "chars":
            # Each word between boundary marks: [boundary, c_1 .. c_k, boundary, 0 ...].
            length = ops.sum(ops.cast(ids > 0, "int64"), axis=-1)
            boundary = self.base - 1
            width = ops.shape(ids)[-1] + 2
            marks = ops.expand_dims(ops.cast(length > 0, "int64") * boundary, -1)  # none in padding words
            marked = ops.concatenate([marks, ids, ops.zeros_like(marks)], axis=-1)
            sequences = marked + ops.cast(ops.one_hot(length + 1, width), "int64") * marks  # (batch, words, width)
        else:
            sequences = ids
        steps = ops.shape(sequences)[-1]
        grams, valid = [], []
        key, present = ops.zeros_like(sequences), ops.ones_like(sequences, dtype="bool")
        for n in range(self.max_n):
            # the n-gram ending at each step t (steps before the first n-1 have none)
            padding = [[0, 0]] * (len(sequences.shape) - 1) + [[n, 0]]
            shifted = ops.pad(sequences, padding)[..., :steps]
            key = key + shifted * (self.base**n)
            present = ops.logical_and(present, shifted > 0)
            if n + 1 >= self.min_n:
                grams.append(key)
                valid.append(present)
        keys, valid = ops.concatenate(grams, axis=-1), ops.concatenate(valid, axis=-1)
        batch = ops.shape(ids)[0]
        return ops.reshape(keys, (batch, -1)), ops.reshape(valid, (batch, -1))

    def call(self, ids):
        keys, valid = self.keys_of(ops.cast(ids, "int64"))
        # Count each n-gram once per text: sorted, a key equal to the one before it is a repeat.
        keys = ops.sort(ops.where(valid, keys, 0), axis=-1)
        earlier = ops.pad(keys, [[0, 0], [1, 0]])[:, :-1]
        counted = ops.logical_and(keys > 0, ops.not_equal(keys, earlier))
        width = ops.shape(keys)[1]
        # Look each key up in the sorted table.
        flat = ops.reshape(keys, (-1,))
        index = ops.minimum(ops.searchsorted(self.keys, flat), self.size - 1)
        known = ops.logical_and(ops.equal(ops.take(self.keys, index), flat), ops.reshape(counted, (-1,)))
        rows = ops.take(self.log_theta, index, axis=0) * ops.expand_dims(ops.cast(known, self.log_theta.dtype), 1)
        scores = ops.sum(ops.reshape(rows, (ops.shape(keys)[0], width, len(self.classes))), axis=1) + self.log_prior
        # Spread the class columns into the label ids' positions.
        spread = np.zeros((len(self.classes), self.num_labels), dtype="float32")
        spread[np.arange(len(self.classes)), self.classes] = 1.0
        return ops.matmul(scores, ops.convert_to_tensor(spread))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_labels)

    def get_config(self):
        return {
            **super().get_config(),
            "num_labels": self.num_labels,
            "classes": self.classes,
            "max_n": self.max_n,
            "base": self.base,
            "size": self.size,
            "unit": self.unit,
            "min_n": self.min_n,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class NaiveBayesScores(NgramScores):
    """`NgramScores` under its former name, which models saved before the rename carry."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScoreWeight(keras.layers.Layer):
    """`weight · scores` with one trainable weight: how much a classifier trusts a second opinion.

    Args:
        initial: The weight's starting value (e.g. 1 / the spread of the scores).
    """

    def __init__(self, initial=1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial = float(initial)

    def build(self, input_shape):
        self.weight = self.add_weight(name="weight", shape=(), initializer=keras.initializers.Constant(self.initial))

    def call(self, scores):
        return self.weight * scores

    def get_config(self):
        return {**super().get_config(), "initial": self.initial}
