"""The auto-encoders' parts against independent references: reconstruction metrics and BLEU by hand,
MAP and P@k by hand, DTW against a brute-force dynamic programme, neighbour swaps by their rules."""

import math
from collections import Counter

import keras
import numpy as np
import pytest

from layers import SwapNeighbours
from pipelines.reconstruction import by_length, reconstruction_metrics
from pipelines.retrieval import average_precision, dtw_distance, retrieval_scores
from pipelines.sentences import HELD_OUT, load_sentences, split_of
from pipelines.vocab import Vocabulary
from tests.support import SHARED_DATA


def brute_bleu(references, hypotheses):
    """Papineni et al.'s corpus BLEU-4 from its definition (no smoothing)."""
    log_precision = 0.0
    for n in range(1, 5):
        matched = total = 0
        for r, h in zip(references, hypotheses):
            grams = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
            reference = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            matched += sum(min(c, reference[g]) for g, c in grams.items())
            total += sum(grams.values())
        log_precision += math.log(matched / total) / 4
    ref_length, hyp_length = sum(map(len, references)), sum(map(len, hypotheses))
    brevity = 1.0 if hyp_length > ref_length else math.exp(1 - ref_length / hyp_length)
    return brevity * math.exp(log_precision)


def test_reconstruction_metrics_by_hand():
    references = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "ran", "in", "the", "park", "today"]]
    hypotheses = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "ran", "into", "the", "park"]]
    metrics = reconstruction_metrics(references, hypotheses)
    assert metrics["exact"] == 0.5
    assert metrics["token_accuracy"] == pytest.approx((6 + 5) / 13)  # "into" at 3 misses; "today" is not rebuilt
    assert metrics["bleu"] == pytest.approx(brute_bleu(references, hypotheses), abs=1e-6)
    assert reconstruction_metrics(references, references)["bleu"] == pytest.approx(1.0)


def test_metrics_by_length_put_each_sentence_in_its_bin():
    references = [["w"] * 3, ["w"] * 7, ["w"] * 9, ["w"] * 40]
    hypotheses = [["w"] * 3, ["x"] * 7, ["w"] * 9, ["w"] * 40]
    rows = {label: (count, m) for label, count, m in by_length(references, hypotheses)}
    assert set(rows) == {"1-5", "6-10", "31+"}
    assert rows["6-10"][0] == 2 and rows["6-10"][1]["exact"] == 0.5
    assert rows["1-5"][1]["exact"] == 1.0


def test_average_precision_and_p_at_k_by_hand():
    assert average_precision([1, 0, 1, 0]) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert average_precision([0, 0, 1]) == pytest.approx(1 / 3)
    assert average_precision([0, 0]) == 0.0
    similarities = np.array([[0.9, 0.1, 0.8, 0.3], [0.2, 0.7, 0.1, 0.6]])
    # Query 0 (label a) ranks items 0 (a), 2 (b), 3 (a), 1 (b); query 1 (label b): 1 (b), 3 (a), 0 (a), 2 (b).
    scores = retrieval_scores(similarities, ["a", "b"], ["a", "b", "b", "a"], k=2)
    assert scores["map"] == pytest.approx(((1 + 2 / 3) / 2 + (1 + 2 / 4) / 2) / 2)
    assert scores["p_at_2"] == pytest.approx((1 / 2 + 1 / 2) / 2)


def brute_dtw(a, b):
    """The textbook DTW recursion, cell by cell."""
    cost = np.full((len(a) + 1, len(b) + 1), np.inf)
    cost[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d = np.linalg.norm(a[i - 1] - b[j - 1])
            cost[i, j] = d + min(cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1])
    return cost[-1, -1]


@pytest.mark.parametrize("seed", range(5))
def test_dtw_agrees_with_a_brute_force_dynamic_programme(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(rng.integers(1, 9), 3)), rng.normal(size=(rng.integers(1, 9), 3))
    assert dtw_distance(a, b) == pytest.approx(brute_dtw(a, b) / (len(a) + len(b)))
    assert dtw_distance(a, a) == pytest.approx(0.0)


def test_neighbour_swaps_move_words_at_most_one_place_and_only_in_training():
    ids = np.array([[5, 6, 7, 8, 9, 10, 0, 0], [11, 12, 0, 0, 0, 0, 0, 0], [13, 0, 0, 0, 0, 0, 0, 0]], "int32")
    layer = SwapNeighbours(0.5, seed=3)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(ids)), ids)
    changed = 0
    for _ in range(30):
        out = keras.ops.convert_to_numpy(layer(ids, training=True))
        for row, new in zip(ids, out):
            n = int((row != 0).sum())
            assert sorted(new[:n]) == sorted(row[:n]) and (new[n:] == 0).all()
            for t in np.flatnonzero(new[:n] != row[:n]):  # a moved word came from a neighbour that took its place
                partner = t + 1 if t + 1 < n and new[t] == row[t + 1] else t - 1
                assert new[t] == row[partner] and new[partner] == row[t]
            changed += int((new != row).any())
    assert changed > 10
    assert SwapNeighbours.from_config(layer.get_config()).get_config() == layer.get_config()


def test_vocabulary_keeps_the_most_frequent_words_up_to_max_size():
    words = Vocabulary.build([["b", "a", "b", "c", "c", "c"]], max_size=2, bounds=True)
    assert words.tokens == ["c", "b"] and words.id("a") == words.oov_id


def test_held_out_sentences_are_chosen_by_their_text_alone():
    assert split_of("A film .") == split_of("a film .  ")
    sentences = load_sentences("mr+atis", SHARED_DATA)
    texts = [s.text.lower() for s in sentences]
    assert len(texts) == len(set(texts))
    assert {s.source for s in sentences} == {"mr", "atis"} and {s.label for s in sentences if s.source == "mr"} == {
        "pos", "neg",
    }  # fmt: skip
    share = np.mean([split_of(s.text) == "test" for s in sentences])
    assert abs(share - HELD_OUT["test"] / 100) < 0.01
