"""A naive Bayes n-gram classifier as a Keras layer, to sit beside a recurrent one.

Multinomial naive Bayes over the presence of word n-grams (n = 1..max_n,
each counted once per text, Laplace smoothing α), as in Wang & Manning 2012:
for class c,

    θ_c(g) = (n_c(g) + α) / (Σ_g' n_c(g') + α |G|),    n_c(g): training texts of class c holding g
    score_c(x) = log P(c) + Σ_{g ∈ x, g ∈ G} log θ_c(g)

over the n-grams G seen in training (unseen ones are left out). The layer
stores each n-gram's log θ_c(g) minus its mean over the classes (the same
class probabilities, smaller numbers), and returns the scores from a batch of
word ids. `fit_naive_bayes` counts them; `leave_one_out_scores` gives each
training text the score of a model that was not trained on it, which is what
the network beside it should learn from (a text's own n-grams would make the
score look surer than it is on new text).

`fit_nbsvm` fills the same layer with Wang & Manning's NBSVM instead: a linear
SVM (L2, squared hinge) over the binary n-gram features scaled by the naive
Bayes log-count ratio, for a class c against the others

    r = log(p / ||p||_1) - log(q / ||q||_1),   p = α + Σ_{texts of c} x,  q = α + Σ_{others} x
    w, b = LinearSVC(C) on x ∘ r,   w' = (1 - β) mean|w| + β w,   b' = β b
    score_c(x) = Σ_{g ∈ x, g ∈ G} w'(g) r(g) + b'

(the SVM weighted by β, plus 1 - β of the naive Bayes direction r scaled to
the SVM weights' mean magnitude, which brings no bias of its own)
so each n-gram's table entry is w'(g) r(g) (two classes: one SVM, ± half of
its score per class). Its training texts get cross-fitted scores: those of an
NBSVM fitted on the other folds of the training texts.

The same layer also scores character n-grams (`unit="chars"`): each word's
characters between word-boundary marks, n = min_n..max_n, counted once per
text, as scikit-learn's `char_wb` analyzer cuts them (" movie " → " m", "mo",
..., "ie "), which reach words the vocabulary never saw.
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


class NaiveBayesCounts:
    """Per class, how many training texts hold each n-gram (the sufficient statistics)."""

    def __init__(self, text_keys, labels, classes, alpha=1.0):
        self.classes = list(classes)  # label ids that are real classes
        self.alpha = alpha
        self.text_keys = text_keys  # per text, its distinct n-gram keys (`text_ngram_keys`)
        self.labels = np.asarray(labels)
        self.keys = np.array(sorted(set().union(*self.text_keys)), dtype="int64")
        self.position = {int(k): i for i, k in enumerate(self.keys)}
        self.features = self._features()
        self.counts = np.stack(
            [np.asarray(self.features[self.labels == c].sum(axis=0)).ravel() for c in self.classes], axis=1
        )  # fmt: skip
        self.texts = np.array([np.sum(self.labels == c) for c in self.classes], dtype=float)

    def _features(self):
        """The training texts' binary n-gram features, a sparse (texts, n-grams) matrix."""
        from scipy import sparse

        rows = np.repeat(np.arange(len(self.text_keys)), [len(k) for k in self.text_keys])
        columns = [self.position[k] for keys in self.text_keys for k in keys]
        return sparse.csr_matrix((np.ones(len(columns)), (rows, columns)), shape=(len(self.text_keys), len(self.keys)))

    def log_probabilities(self, counts, totals, texts, size):
        """(log θ per n-gram and class, log prior per class), each centred over the classes;
        `size`: the number of n-grams seen in training (|G|)."""
        log_theta = np.log(counts + self.alpha) - np.log(totals + self.alpha * size)
        log_prior = np.log(texts / texts.sum())
        return log_theta - log_theta.mean(axis=1, keepdims=True), log_prior - log_prior.mean()

    def table(self):
        return self.log_probabilities(self.counts, self.counts.sum(axis=0), self.texts, len(self.keys))

    def leave_one_out_scores(self, num_labels):
        """Each training text's scores (texts, num_labels): exactly those of a model fitted on
        the other texts (n-grams only that text holds become unseen)."""
        totals = self.counts.sum(axis=0)
        scores = np.zeros((len(self.text_keys), num_labels))
        for row, (keys, label) in enumerate(zip(self.text_keys, self.labels)):
            column = self.classes.index(int(label))
            rows = [self.position[k] for k in keys]
            counts = self.counts[rows].copy()
            counts[:, column] -= 1
            own_totals, own_texts = totals.copy(), self.texts.copy()
            own_totals[column] -= len(rows)
            own_texts[column] -= 1
            seen = counts.sum(axis=1) > 0
            log_theta, log_prior = self.log_probabilities(
                counts[seen], own_totals, np.maximum(own_texts, 1e-12), len(self.keys) - np.sum(~seen)
            )
            scores[row, self.classes] = log_prior + log_theta.sum(axis=0)
        return scores


def fit_naive_bayes(sequences, labels, num_labels, classes, max_n=2, alpha=1.0, base=None, name="naive_bayes"):
    """(a `NaiveBayesScores` layer fitted on the texts, the texts' leave-one-out scores).

    `sequences`: word-id lists; `labels`: label ids; `classes`: the label ids
    that are classes (others, e.g. an OOV label, score 0); `base`: the
    vocabulary size (default: the largest id + 1).
    """
    base = base or 1 + max(max(s, default=0) for s in sequences)
    check_order("words", 1, max_n, base)
    counts = NaiveBayesCounts(text_ngram_keys(sequences, "words", 1, max_n, base), labels, classes, alpha)
    log_theta, log_prior = counts.table()
    layer = NaiveBayesScores(
        num_labels=num_labels, classes=counts.classes, max_n=max_n, base=base, size=len(counts.keys),
        dtype="float32",  # sums of hundreds of log-probabilities: kept out of float16 under --mixed-precision
        name=name,
    )  # fmt: skip
    layer.build((None, None))
    layer.set_table(counts.keys, log_theta, log_prior)
    return layer, counts.leave_one_out_scores(num_labels)


def nbsvm_table(features, targets, C=1.0, beta=0.25, alpha=1.0):
    """(entry per n-gram, bias) of a binary NBSVM: `targets` True for the class, False for the others.

    Only the n-grams some training text holds are in the model (as if the others had never been
    counted); the others' entries are 0."""
    from sklearn.svm import LinearSVC

    targets = np.asarray(targets, dtype=bool)
    if targets.all() or not targets.any():
        raise ValueError("NBSVM needs training texts of the class and of the others")
    seen = np.flatnonzero(np.asarray(features.sum(axis=0)).ravel() > 0)
    held = features[:, seen]
    p = alpha + np.asarray(held[targets].sum(axis=0)).ravel()
    q = alpha + np.asarray(held[~targets].sum(axis=0)).ravel()
    ratio = np.log(p / p.sum()) - np.log(q / q.sum())
    svm = LinearSVC(C=C, max_iter=10_000).fit(held.multiply(ratio).tocsr(), targets)
    w = svm.coef_[0]
    entries = np.zeros(features.shape[1])
    entries[seen] = ((1 - beta) * np.abs(w).mean() + beta * w) * ratio
    return entries, beta * float(svm.intercept_[0])


def nbsvm_scores_table(features, labels, classes, C=1.0, beta=0.25, alpha=1.0):
    """(table (n-grams, classes), bias (classes,)): one NBSVM per class against the others; for two
    classes one NBSVM, half its score for the second class and minus half for the first."""
    labels = np.asarray(labels)
    if len(classes) == 2:
        entries, bias = nbsvm_table(features, labels == classes[1], C, beta, alpha)
        return np.stack([-entries / 2, entries / 2], axis=1), np.array([-bias / 2, bias / 2])
    fitted = [nbsvm_table(features, labels == c, C, beta, alpha) for c in classes]
    return np.stack([t for t, _ in fitted], axis=1), np.array([b for _, b in fitted])


class TooFewTexts(ValueError):
    """Classes with fewer than two training texts, too few to cross-fit; `counts`: {label id: texts}."""

    def __init__(self, counts):
        self.counts = counts
        super().__init__(
            "NBSVM: " + "; ".join(f"label id {label} has {n} training text" for label, n in counts.items())
            + "; cross-fitting its scores needs at least 2 texts of each class"
        )  # fmt: skip


def cross_fit_folds(labels, folds, seed, classes=None):
    """Fold (0..folds-1) of each text: each class's texts dealt in turn over the folds, in a
    seeded order, so that every fold's complement holds every class. Raises `TooFewTexts` when
    a class (of `classes`, by default those in `labels`) has fewer than two texts."""
    labels = np.asarray(labels)
    present = np.unique(labels)
    sizes = {int(c): int(np.sum(labels == c)) for c in (present if classes is None else classes)}
    if any(n < 2 for n in sizes.values()):
        raise TooFewTexts({label: n for label, n in sizes.items() if n < 2})
    fold = np.empty(len(labels), dtype=int)
    rng = np.random.default_rng(seed)
    for label in present:
        members = np.flatnonzero(labels == label)
        fold[rng.permutation(members)] = np.arange(len(members)) % folds
    return fold


def fit_nbsvm(
    sequences, labels, num_labels, classes, max_n=2, C=1.0, beta=0.25, alpha=1.0, base=None, folds=5, seed=0,
    unit="words", min_n=1, name="naive_bayes",
):  # fmt: skip
    """(a `NaiveBayesScores` layer holding an NBSVM fitted on the texts, the texts' cross-fitted
    scores: each text scored by an NBSVM fitted on the other `folds` - 1 folds of them, the
    folds of `cross_fit_folds`).

    Arguments as `fit_naive_bayes`; `C`: the SVM's inverse regularization; `beta`: the weight of
    the SVM's own weights against their mean magnitude (Wang & Manning: C = 1, β = 0.25).
    `unit="chars"`: `sequences` are per text its words' character ids (words, max_chars), the
    n-grams those of characters, n = `min_n`..`max_n` (`char_ngram_keys`), `base` the alphabet's
    size + 1 (the last id marks word boundaries).
    """
    fold = cross_fit_folds(labels, folds, seed, classes)  # first: a class too small fails before any fit
    if unit == "chars" and not base:
        raise ValueError("character n-grams need base: the alphabet's size + 1")
    base = base or 1 + max(max(s, default=0) for s in sequences)
    check_order(unit, min_n, max_n, base)
    counts = NaiveBayesCounts(text_ngram_keys(sequences, unit, min_n, max_n, base), labels, classes, alpha)
    features, labels = counts.features, counts.labels
    table, bias = nbsvm_scores_table(features, labels, counts.classes, C, beta, alpha)
    layer = NaiveBayesScores(
        num_labels=num_labels, classes=counts.classes, max_n=max_n, base=base, size=len(counts.keys),
        unit=unit, min_n=min_n, dtype="float32", name=name,
    )  # fmt: skip
    layer.build((None, None) if unit == "words" else (None, None, None))
    layer.set_table(counts.keys, table, bias)
    scores = np.zeros((len(labels), num_labels))
    for k in range(folds):
        held_out = fold == k
        part_table, part_bias = nbsvm_scores_table(features[~held_out], labels[~held_out], counts.classes, C, beta, alpha)
        scores[np.ix_(held_out, counts.classes)] = features[held_out] @ part_table + part_bias
    return layer, scores


def int64_available():
    """Whether the backend computes int64 as int64 (JAX does only with its x64 flag on)."""
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


@keras.saving.register_keras_serializable(package=PACKAGE)
class NaiveBayesScores(keras.layers.Layer):
    """Word ids (batch, time), 0 = padding -> naive Bayes scores (batch, num_labels); with
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
                f"NaiveBayesScores: {max_n}-gram keys of a {base}-symbol {unit} vocabulary pass 2**31, and "
                "JAX computes int64 in int32 unless its 64-bit types are on, which would mix n-grams up: "
                "set JAX_ENABLE_X64=1, use another Keras backend, or a lower --naive-bayes order "
                "(--char-ngrams 0 for character n-grams)."
            )
        self.num_labels, self.classes = num_labels, list(classes)
        self.max_n, self.base, self.size = max_n, base, size
        self.unit, self.min_n = unit, min_n

    def build(self, input_shape):
        self.keys = self.add_weight(name="keys", shape=(self.size,), dtype="int64", initializer="zeros", trainable=False)
        self.log_theta = self.add_weight(
            name="log_theta", shape=(self.size, len(self.classes)), initializer="zeros", trainable=False
        )
        self.log_prior = self.add_weight(name="log_prior", shape=(len(self.classes),), initializer="zeros", trainable=False)

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
