"""Ranking by similarity and scoring it: average precision, MAP, precision at k, and DTW."""

import numpy as np


def average_precision(relevant):
    """AP of one ranked list (booleans, best first): the mean of the precision at each relevant item."""
    relevant = np.asarray(relevant, dtype=bool)
    if not relevant.any():
        return 0.0
    hits = np.cumsum(relevant)
    return float(np.mean(hits[relevant] / (np.flatnonzero(relevant) + 1)))


def retrieval_scores(similarities, query_labels, collection_labels, k=10):
    """MAP and P@k of each query's ranking of the collection by `similarities` (queries,
    collection; higher is closer), a hit being an item of the query's label."""
    query_labels, collection_labels = np.asarray(query_labels), np.asarray(collection_labels)
    aps, precisions = [], []
    for row, label in zip(np.asarray(similarities), query_labels):
        order = np.argsort(-row, kind="stable")
        relevant = collection_labels[order] == label
        aps.append(average_precision(relevant))
        precisions.append(float(np.mean(relevant[:k])))
    return {"map": float(np.mean(aps)), f"p_at_{k}": float(np.mean(precisions))}


def dtw_distance(a, b):
    """The DTW alignment cost of two feature sequences (frames, dims) under Euclidean frame
    distances (librosa.sequence.dtw, steps (1,1), (0,1), (1,0)), divided by the two lengths' sum
    so that long and short pairs compare."""
    import librosa

    cost = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean", backtrack=False)
    return float(cost[-1, -1]) / (len(a) + len(b))
