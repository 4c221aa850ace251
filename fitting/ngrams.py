"""Fitting n-gram classifiers (naive Bayes, NBSVM) into `layers.NgramScores` tables, and blends.

Multinomial naive Bayes over the presence of word n-grams (n = 1..max_n,
each counted once per text, Laplace smoothing α), as in Wang & Manning 2012:
for class c,

    θ_c(g) = (n_c(g) + α) / (Σ_g' n_c(g') + α |G|),    n_c(g): training texts of class c holding g
    score_c(x) = log P(c) + Σ_{g ∈ x, g ∈ G} log θ_c(g)

over the n-grams G seen in training (unseen ones are left out). The layer
(`layers.NgramScores`) stores each n-gram's log θ_c(g) minus its mean over the classes (the same
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

import numpy as np

from layers.ngram_scores import NgramScores, text_ngram_keys, check_order


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
    layer = NgramScores(
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
    layer = NgramScores(
        num_labels=num_labels, classes=counts.classes, max_n=max_n, base=base, size=len(counts.keys),
        unit=unit, min_n=min_n, dtype="float32", name=name,
    )  # fmt: skip
    layer.build((None, None) if unit == "words" else (None, None, None))
    layer.set_table(counts.keys, table, bias)
    scores = np.zeros((len(labels), num_labels))
    for k in range(folds):
        held_out = fold == k
        part_table, part_bias = nbsvm_scores_table(
            features[~held_out], labels[~held_out], counts.classes, C, beta, alpha
        )
        scores[np.ix_(held_out, counts.classes)] = features[held_out] @ part_table + part_bias
    return layer, scores


def fit_blend(network, ngram, gold):
    """(a, b) minimizing the cross-entropy of softmax(a · network + b · ngram) against `gold`.

    `network`, `ngram`: two classifiers' class scores (texts, classes); `gold`: class indices.
    With two classes this is a logistic regression without intercept on the two score margins.
    """
    from scipy.optimize import minimize

    network, ngram, gold = np.asarray(network, float), np.asarray(ngram, float), np.asarray(gold)

    def loss_and_gradient(weights):
        scores = weights[0] * network + weights[1] * ngram
        scores -= scores.max(axis=1, keepdims=True)
        probabilities = np.exp(scores)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        loss = -np.mean(np.log(probabilities[np.arange(len(gold)), gold] + 1e-300))
        error = probabilities
        error[np.arange(len(gold)), gold] -= 1.0
        return loss, np.array([np.sum(error * network), np.sum(error * ngram)]) / len(gold)

    start = np.array([1.0, 1.0 / (np.std(ngram) or 1.0)])
    result = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])
