"""Fitting the keywords app's phrase ranking: a logistic regression (scikit-learn) over each
candidate phrase's features, which `pipelines.keyphrases.PhraseRanking` carries in a saved model."""

import numpy as np

from pipelines.keyphrases import (
    RANKING_FEATURES,
    _quadratic,
    _ranked,
    phrase_candidates,
    ranking_features,
    stemmed,
)


def fit_phrase_ranking(token_lists, probability_lists, gold_lists, C=1.0):
    """A logistic regression telling gold keyphrases (stemmed, exact) among each document's
    `RANKING_POOL` most confident candidates, over the standardized `ranking_features` and
    their pairwise products: {"features", "mean", "scale", "weights", "intercept"}."""
    pools = [ranking_features(phrase_candidates(t, p)) for t, p in zip(token_lists, probability_lists)]
    return _fit_ranking(pools, gold_lists, C)


def _fit_ranking(pools, gold_lists, C=1.0):
    """`fit_phrase_ranking` from each document's `ranking_features`."""
    from sklearn.linear_model import LogisticRegression

    rows, targets = [], []
    for (_, keys, features), gold in zip(pools, gold_lists):
        gold_keys = {stemmed(g) for g in gold}
        rows.append(features)
        targets += [key in gold_keys for key in keys]
    targets = np.array(targets)
    if not targets.any() or targets.all():
        raise ValueError("fitting a phrase ranking needs candidates that are keyphrases and ones that are not")
    features = np.concatenate(rows)
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale[scale == 0] = 1.0  # a constant feature (e.g. nothing nested anywhere) adds nothing
    model = LogisticRegression(C=C, max_iter=5000).fit(_quadratic(features, mean, scale), targets)
    return {
        "features": list(RANKING_FEATURES),
        "mean": [float(m) for m in mean],
        "scale": [float(s) for s in scale],
        "weights": [float(w) for w in model.coef_[0]],
        "intercept": float(model.intercept_[0]),
    }


def cross_fitted_rankings(token_lists, probability_lists, gold_lists):
    """`ranked_keyphrases` of each document by a `fit_phrase_ranking` fitted on the other half of
    the documents (alternate documents: two halves, each ranked by the other's fit), so that no
    document is ranked by a ranking that saw its keyphrases; a half whose fit fails (no
    keyphrase among its candidates) is ranked by confidence."""
    candidates = [phrase_candidates(t, p) for t, p in zip(token_lists, probability_lists)]
    pools = [ranking_features(c) for c in candidates]  # once per document, for both uses
    halves = [range(start, len(token_lists), 2) for start in (0, 1)]
    rankings = [None] * len(token_lists)
    for ranked, fitted in (halves, halves[::-1]):
        try:
            ranking = _fit_ranking([pools[i] for i in fitted], [gold_lists[i] for i in fitted])
        except ValueError:
            ranking = None
        for i in ranked:
            rankings[i] = _ranked(candidates[i], ranking, pools[i])
    return rankings
