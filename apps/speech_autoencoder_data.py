"""The speech auto-encoder's data (one recording an example, its MFCCs) and query-by-example scoring:
the auto-encoder's codes, the averaged-MFCC vector and DTW over the MFCC sequences, side by side."""

import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from apps import autoencoder
from pipelines.audio import AudioError, FeatureCache, FeatureConfig, Utterance, features, load_audio
from pipelines.retrieval import dtw_distance, retrieval_scores
from pipelines.text import example_batches

FEATURES = "features"
# Chung et al.'s 13 MFCCs, normalized over the training frames (`standardize`), not per recording:
# per recording, every averaged-MFCC vector (the naive baseline) would be zero.
CONFIG = FeatureConfig(kind="mfcc", n_mfcc=13, deltas=False, normalize=False)
ENCODE_BATCH = 128


@dataclass
class SpokenWords:
    recordings: dict  # split -> [Recording]
    features: dict  # split -> [array (frames, 13)]
    batch_size: int
    seed: int
    dtw_queries: int = 100
    scale: tuple = ()  # (mean, deviation) of each coefficient over the training frames

    def has_split(self, split):
        return bool(self.recordings.get(split))

    def batches(self, split, shuffle=False):
        """(features, features, frame weights) batches: the auto-encoder's input is its target."""
        data = example_batches({FEATURES: self.features[split]}, self.batch_size, self.seed if shuffle else None,
                               length_key=FEATURES)  # fmt: skip

        def pairs(batch):
            x = batch[FEATURES]
            return {FEATURES: x}, x, tf.cast(tf.reduce_any(tf.not_equal(x, 0.0), axis=-1), "float32")

        return data.map(pairs)

    def collection(self, split):
        """The recordings a split's queries search: those of the other speakers (the training
        speakers' for test; for valid, the training split, whose speakers are the same but whose
        takes differ)."""
        if split == "test":
            return self.recordings["train"] + self.recordings["valid"], self.features["train"] + self.features["valid"]
        return self.recordings["train"], self.features["train"]


def recording_features(recordings, progress=True):
    """(kept recordings, their MFCC arrays, error messages): a recording that cannot be read is left out."""
    utterances = [Utterance((r,), (0, 0)) for r in recordings]
    arrays, errors = FeatureCache().load(utterances, CONFIG, progress=progress, label="MFCC")
    kept = [(r, a) for r, a in zip(recordings, arrays) if a is not None]
    return [r for r, _ in kept], [a for _, a in kept], errors


def fit_scale(arrays):
    """(mean, deviation) of each coefficient over all frames of `arrays`."""
    frames = np.concatenate(arrays)
    return frames.mean(axis=0).astype("float32"), (frames.std(axis=0) + 1e-5).astype("float32")


def standardize(arrays, scale):
    mean, deviation = (np.asarray(v, "float32") for v in scale)
    return [(a - mean) / deviation for a in arrays]


def file_features(path, scale):
    """Standardized MFCCs of one audio file; refused (naming it) when unreadable or shorter than one frame."""
    samples = load_audio(path, CONFIG.sample_rate)
    if len(samples) < CONFIG.win_length:
        raise AudioError(
            f"{path}: {len(samples)} samples ({1000 * len(samples) / CONFIG.sample_rate:.1f} ms), shorter than one "
            f"{1000 * CONFIG.win_length / CONFIG.sample_rate:.0f} ms analysis frame"
        )
    return standardize([features(samples, CONFIG)], scale)[0]


def pad_frames(arrays):
    width = max(len(a) for a in arrays)
    padded = np.zeros((len(arrays), width, arrays[0].shape[1]), "float32")
    for row, array in enumerate(arrays):
        padded[row, : len(array)] = array
    return padded


def encode_arrays(encoder, arrays):
    """Codes of feature arrays (frames, 13), in order."""
    return autoencoder.codes(encoder, arrays, pad_frames, ENCODE_BATCH)


def mean_vectors(arrays):
    """The naive encoder: each recording's MFCC frames averaged (Chung et al.'s baseline)."""
    return np.stack([a.mean(axis=0) for a in arrays])


def query_by_example(encoder, queries, collection, query_digits, collection_digits, dtw_queries=0, seed=0):
    """MAP and P@10 of the codes' cosine ranking, of the averaged-MFCC vectors' and, on a seeded
    subset of `dtw_queries` queries (0: none), of DTW, with each method's seconds per query (a
    query's own encoding and its ranking; the collection is encoded once beforehand, as an index
    would be). The code and mean methods are also scored on DTW's subset, for a like comparison."""
    metrics = {}
    collection_codes = encode_arrays(encoder, collection)
    started = time.perf_counter()
    query_codes = encode_arrays(encoder, queries)
    similarities = autoencoder.cosine_similarities(query_codes, collection_codes)
    metrics["code_seconds_per_query"] = (time.perf_counter() - started) / len(queries)
    code = retrieval_scores(similarities, query_digits, collection_digits)
    metrics.update({f"code_{k}": v for k, v in code.items()})
    collection_means = mean_vectors(collection)
    started = time.perf_counter()
    mean_similarities = autoencoder.cosine_similarities(mean_vectors(queries), collection_means)
    metrics["mean_seconds_per_query"] = (time.perf_counter() - started) / len(queries)
    metrics.update(
        {f"mean_{k}": v for k, v in retrieval_scores(mean_similarities, query_digits, collection_digits).items()}
    )
    if dtw_queries:
        chosen = np.sort(np.random.default_rng(seed).permutation(len(queries))[:dtw_queries])
        started = time.perf_counter()
        distances = np.array([[dtw_distance(queries[q], c) for c in collection] for q in chosen])
        metrics["dtw_seconds_per_query"] = (time.perf_counter() - started) / len(chosen)
        digits = np.asarray(query_digits)[chosen]
        metrics.update({f"dtw_{k}": v for k, v in retrieval_scores(-distances, digits, collection_digits).items()})
        for name, scores in (("code", similarities), ("mean", mean_similarities)):
            subset = retrieval_scores(scores[chosen], digits, collection_digits)
            metrics[f"{name}_map_dtw_subset"] = subset["map"]
        metrics["dtw_queries"] = float(len(chosen))
    return metrics
