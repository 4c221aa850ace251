"""Keyphrase data, labels, candidate ranking, metrics and the TF-IDF baseline."""

import math
import zipfile

import numpy as np
import pytest

from fitting.phrase_ranking import cross_fitted_rankings, fit_phrase_ranking
from pipelines.keyphrases import (
    TfIdfBaseline,
    bio_tags,
    hulth_split,
    keyphrase_metrics,
    load_keyphrase_dataset,
    ngram_candidates,
    phrase_candidates,
    prf_at_k,
    ranked_keyphrases,
    read_liaad_zip,
    split_documents,
    word_statistics_tables,
)
from pipelines.sources import DataFormatError
from pipelines.vocab import Vocabulary
from tests.support import SHARED_DATA


@pytest.fixture(scope="module")
def inspec():
    return load_keyphrase_dataset("inspec", SHARED_DATA)


def test_inspec_has_2000_documents_in_hulths_split_1000_500_500(inspec):
    assert len(inspec.documents) == 2000 and inspec.skipped == {}
    document = next(d for d in inspec.documents if d.doc_id == "114")
    assert document.text.startswith("Cooperative three- and four-player quantum games")
    assert "quantum entanglement" in document.keyphrases and "game theory" in document.keyphrases
    assert document.split == "train" and document.uncontrolled[-1] == "nonzero sum difficulty"
    assert len(document.uncontrolled) == 6 and "game theory" not in document.uncontrolled
    splits = split_documents(inspec.documents)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [1000, 500, 500]
    ids = [d.doc_id for s in splits.values() for d in s]
    assert len(set(ids)) == 2000
    # Hulth's test set (ake-datasets' test/ folder) includes these, its validation set 1461 and 15.
    assert {"193", "1939", "2200", "414"} <= {d.doc_id for d in splits["test"]}
    assert {"1461", "15"} <= {d.doc_id for d in splits["valid"]}


def test_inspec_uncontrolled_keyphrases_are_the_key_file_before_its_sorted_thesaurus_terms(inspec):
    by_id = {d.doc_id: d for d in inspec.documents}
    # 1942.key: 18 uncontrolled keyphrases, then 9 controlled (thesaurus) terms, "channel allocation" ...
    document = by_id["1942"]
    assert document.split == "test" and len(document.keyphrases) == 27
    assert document.uncontrolled[0] == "precoded OFDM" and document.uncontrolled[-1] == "robustness"
    assert len(document.uncontrolled) == 18 and "fading channels" not in document.uncontrolled
    assert "fading channels" in document.keyphrases
    # Inspec lists a document's controlled terms in alphabetical order: every tail the table cuts off is sorted.
    with zipfile.ZipFile(SHARED_DATA / "keyphrase" / "Inspec.zip") as archive:
        for doc_id, (split, controlled) in hulth_split().items():
            lines = archive.read(f"Inspec/keys/{doc_id}.key").decode().splitlines()
            lines = [" ".join(k.split()).lower() for k in lines if k.strip()]
            assert lines[-controlled:] == sorted(lines[-controlled:]), doc_id
            assert by_id[doc_id].split == split
    # The published statistics of Hulth's uncontrolled keyphrases: 9.79 per training abstract, 9.15 per
    # validation abstract, 9.83 per test abstract (taln-ls2n/inspec's card, which cuts one test key in
    # two at a ';': 4913 / 500).
    splits = split_documents(inspec.documents)
    assert round(np.mean([len(d.uncontrolled) for d in splits["train"]]), 2) == 9.79
    assert sum(len(d.uncontrolled) for d in splits["valid"]) == 4575
    assert sum(len(d.uncontrolled) for d in splits["test"]) == 4912


def test_a_split_table_that_does_not_fit_the_key_file_is_an_error_naming_it(tmp_path):
    path = write_zip(tmp_path / "Mini.zip", {"Mini/docsutf8/1.txt": "text", "Mini/keys/1.key": "a\nb\n"})
    with pytest.raises(DataFormatError, match=r"Mini.zip:Mini/keys/1.key: 2 keyphrases, but .* counts 2"):
        read_liaad_zip(path, {"1": ("test", 2)})
    document = read_liaad_zip(path, {"1": ("test", 1)}).documents[0]
    assert (document.split, document.uncontrolled, document.keyphrases) == ("test", ("a",), ("a", "b"))


def write_zip(path, files):
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


def test_documents_without_keys_are_skipped_and_counted(tmp_path):
    path = write_zip(
        tmp_path / "Mini.zip",
        {
            "Mini/docsutf8/1.txt": "neural networks learn",
            "Mini/keys/1.key": "neural networks\n",
            "Mini/docsutf8/2.txt": "no keys here",
            "Mini/keys/2.key": "\n  \n",
            "Mini/docsutf8/3.txt": "no key file",
        },
    )
    dataset = read_liaad_zip(path)
    assert [d.doc_id for d in dataset.documents] == ["1"]
    assert dataset.skipped == {"key file without keys": 1, "no key file": 1}


def test_malformed_archives_are_errors_naming_the_file(tmp_path):
    with pytest.raises(DataFormatError, match="no NAME/docsutf8"):
        read_liaad_zip(write_zip(tmp_path / "empty.zip", {"x/readme.txt": "hi"}))
    bad = write_zip(tmp_path / "bad.zip", {"B/docsutf8/1.txt": b"caf\xe9", "B/keys/1.key": "cafe"})
    with pytest.raises(DataFormatError, match=r"bad.zip:B/docsutf8/1.txt: not valid UTF-8 at byte 3"):
        read_liaad_zip(bad)
    (tmp_path / "text.zip").write_text("not a zip")
    with pytest.raises(DataFormatError, match="not a zip file"):
        read_liaad_zip(tmp_path / "text.zip")


def test_bio_tags_mark_stemmed_occurrences_longest_first():
    tokens = "quantum games are played ; a quantum game of quantum entanglement".split()
    keys = [["quantum", "game"], ["quantum", "entanglement"], ["game"], ["absent", "phrase"]]
    tags, found = bio_tags(tokens, keys)
    assert tags == ["B", "I", "O", "O", "O", "O", "B", "I", "O", "B", "I"]
    assert found == 2  # "game" only occurs inside the longer "quantum game(s)"; one key is absent


def test_candidates_are_spans_ranked_by_their_tagging_probability_and_deduplicated():
    tokens = ["neural", "networks", ",", "neural", "network"]
    #                 B     I     O
    probabilities = np.array([
        [0.8, 0.1, 0.1],  # neural
        [0.1, 0.7, 0.2],  # networks
        [0.0, 0.0, 1.0],  # ,         punctuation ends every span
        [0.6, 0.2, 0.2],  # neural
        [0.1, 0.9, 0.0],  # network   (same stem as "neural networks")
    ])  # fmt: skip
    ranked = dict(ranked_keyphrases(tokens, probabilities))
    # "neural networks" at 0-1: 0.8 * 0.7 * (1 - 0.0);  at 3-4: 0.6 * 0.9 (end of text)
    assert ranked["neural networks"] == pytest.approx(0.8 * 0.7)
    assert ranked["neural"] == pytest.approx(0.8 * (1 - 0.7))  # the better of its two places
    assert ranked["networks"] == pytest.approx(0.1 * 1.0)
    assert "networks , neural" not in ranked and len(ranked) == 3
    assert list(ranked)[0] == "neural networks"


NEURAL = ["neural", "networks", ",", "neural", "network"]
NEURAL_PROBABILITIES = np.array(
    [
        [0.8, 0.1, 0.1],
        [0.1, 0.7, 0.2],
        [0.0, 0.0, 1.0],
        [0.6, 0.2, 0.2],
        [0.1, 0.9, 0.0],
    ]
)  # fmt: skip  (the example above)


def test_candidates_keep_their_best_and_total_confidence_over_occurrences():
    candidates = {
        phrase: (best, total, words, first)
        for phrase, best, total, words, first in phrase_candidates(NEURAL, NEURAL_PROBABILITIES).values()
    }  # fmt: skip
    assert candidates["neural networks"] == pytest.approx((0.8 * 0.7, 0.8 * 0.7 + 0.6 * 0.9, 2, 0 / 5))
    assert candidates["neural"] == pytest.approx((0.8 * 0.3, 0.8 * 0.3 + 0.6 * 0.1, 1, 0 / 5))
    # "networks" (at 1: 0.1, then the comma) and "network" (at 4: 0.1, the text's end) share a stem
    assert candidates["networks"] == pytest.approx((0.1, 0.2, 1, 1 / 5))


def test_a_ranking_saved_before_is_linear_in_confidence_total_and_length():
    # coefficients of (log best, log total, words) and the intercept: here, short phrases first
    ranked = ranked_keyphrases(NEURAL, NEURAL_PROBABILITIES, ranking=[0.0, 0.0, -3.0, 3.0])
    assert [p for p, _ in ranked] == ["neural", "networks", "neural networks"]  # the tie keeps confidence order
    assert [s for _, s in ranked] == pytest.approx([0.5, 0.5, 1 / (1 + math.exp(3.0))])
    ranked = dict(ranked_keyphrases(NEURAL, NEURAL_PROBABILITIES, ranking=[1.0, 0.5, 0.0, -0.2]))
    expected = 1 / (1 + math.exp(-(math.log(0.24) + 0.5 * math.log(0.30) - 0.2)))
    assert ranked["neural"] == pytest.approx(expected, rel=1e-6)


def test_a_fitted_ranking_scores_standardized_features_and_their_products():
    # "neural" and "networks" lie inside the more confident "neural networks"; nothing contains it.
    weights = np.zeros(6 + 21)
    weights[4] = 2.0  # inside_better
    weights[6 + 11] = 0.5  # words x words: the 12th product, (2, 2), after (0, 0..5) and (1, 1..5)
    ranking = {"mean": [0.0] * 6, "scale": [1.0] * 6, "weights": list(weights), "intercept": -1.0}
    ranked = dict(ranked_keyphrases(NEURAL, NEURAL_PROBABILITIES, ranking=ranking))
    assert ranked["neural networks"] == pytest.approx(1 / (1 + math.exp(-(-1.0 + 0.5 * 2 * 2))))
    assert ranked["neural"] == pytest.approx(1 / (1 + math.exp(-(-1.0 + 2.0 + 0.5))))
    assert ranked["networks"] == pytest.approx(ranked["neural"])
    ranking["mean"], ranking["scale"] = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 2.0, 1.0, 1.0, 1.0]
    ranked = dict(ranked_keyphrases(NEURAL, NEURAL_PROBABILITIES, ranking=ranking))  # words -> (words - 1) / 2
    assert ranked["neural networks"] == pytest.approx(1 / (1 + math.exp(-(-1.0 + 0.5 * 0.25))))


def ranking_examples(count, seed=0):
    """Random documents and tag probabilities whose gold keyphrases are the forms that occur most
    confidently in total, whatever their best occurrence: (tokens, probabilities, gold) lists."""
    rng = np.random.default_rng(seed)
    vocabulary = ["graph", "kernel", "method", "learning", "sparse", "model", "data", "network"]
    documents, probabilities, gold = [], [], []
    for _ in range(count):
        tokens = list(rng.choice(vocabulary, size=30))
        scores = rng.dirichlet([1.0, 1.0, 2.0], size=len(tokens))
        by_total = sorted(phrase_candidates(tokens, scores).values(), key=lambda c: -c[2])
        documents.append(tokens)
        probabilities.append(scores)
        gold.append([c[0].split() for c in by_total[:4]])
    return documents, probabilities, gold


def test_fitted_ranking_is_a_logistic_regression_on_the_most_confident_candidates():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    documents, probabilities, gold = ranking_examples(30)
    ranking = fit_phrase_ranking(documents, probabilities, gold)
    # the reference: the same regression over features computed here from the candidates
    rows, targets = [], []
    for tokens, scores, keys in zip(documents, probabilities, gold):
        pool = sorted(phrase_candidates(tokens, scores).values(), key=lambda c: -c[1])[:40]
        for rank, (phrase, best, total, words, _) in enumerate(pool):
            words_of = phrase.split()
            first = next(i for i in range(len(tokens)) if tokens[i : i + len(words_of)] == words_of)
            better = [p[0] for p in pool[:rank]]
            inside = any(f" {phrase} " in f" {other} " for other in better)
            contains = any(f" {other} " in f" {phrase} " for other in better)
            rows.append([math.log(best), math.log(total), words, first / len(tokens), inside, contains])
            targets.append(words_of in keys)
    scaled = StandardScaler().fit_transform(np.array(rows, dtype=float))
    expanded = PolynomialFeatures(2, include_bias=False).fit_transform(scaled)
    reference = LogisticRegression(max_iter=5000).fit(expanded, np.array(targets))
    np.testing.assert_allclose(ranking["weights"], reference.coef_[0], rtol=1e-3, atol=1e-3)
    assert ranking["intercept"] == pytest.approx(reference.intercept_[0], abs=1e-3)
    assert ranking["weights"][1] > 0  # the total is what tells gold here
    fitted = [[p for p, _ in ranked_keyphrases(t, s, ranking)] for t, s in zip(documents, probabilities)]
    plain = [[p for p, _ in ranked_keyphrases(t, s)] for t, s in zip(documents, probabilities)]
    assert keyphrase_metrics(fitted, gold)["f1_at_5"] > keyphrase_metrics(plain, gold)["f1_at_5"]
    with pytest.raises(ValueError, match="keyphrases and ones that are not"):
        fit_phrase_ranking(documents, probabilities, [[] for _ in documents])


def test_cross_fitted_rankings_rank_each_half_by_the_other_halfs_fit():
    documents, probabilities, gold = ranking_examples(40, seed=1)
    rankings = cross_fitted_rankings(documents, probabilities, gold)
    for ranked, fitted in ((range(0, 40, 2), range(1, 40, 2)), (range(1, 40, 2), range(0, 40, 2))):
        ranking = fit_phrase_ranking(*([column[i] for i in fitted] for column in (documents, probabilities, gold)))
        for i in ranked:
            assert rankings[i] == ranked_keyphrases(documents[i], probabilities[i], ranking)
    # No document is ranked by a fit that saw its own keyphrases: new gold for the even documents
    # leaves their rankings as they were and changes the odd ones'.
    changed = [g if i % 2 else [["graph"]] for i, g in enumerate(gold)]
    again = cross_fitted_rankings(documents, probabilities, changed)
    assert all(again[i] == rankings[i] for i in range(0, 40, 2))
    assert any(again[i] != rankings[i] for i in range(1, 40, 2))
    # A half without a keyphrase among its candidates cannot be fitted: the other half is then
    # ranked by confidence.
    none_even = [g if i % 2 else [] for i, g in enumerate(gold)]
    fallback = cross_fitted_rankings(documents, probabilities, none_even)
    assert all(fallback[i] == ranked_keyphrases(documents[i], probabilities[i]) for i in range(1, 40, 2))


def test_a_suspended_hyphen_is_never_a_candidate_end_but_a_span_may_run_through_it():
    tokens = ["three-", "and", "four-player", "games"]
    probabilities = np.array([[0.9, 0.0, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])
    ranked = dict(ranked_keyphrases(tokens, probabilities))
    assert "three-" not in ranked
    assert ranked["three- and four-player games"] == pytest.approx(0.9 * 0.8 * 0.8 * 0.8)
    assert ranked["four-player games"] == pytest.approx(0.1 * 0.8)


def test_precision_recall_f1_at_k_by_hand():
    gold = [["neural", "networks"], ["deep", "learning"], ["back", "propagation"], ["gradients"]]
    predicted = ["neural network", "learning", "gradient", "deep learning"]
    # Top 3: "neural network" (matches, stemmed), "learning" (no), "gradient" (matches "gradients").
    precision, recall, f1 = prf_at_k(predicted, gold, 3)
    assert (precision, recall) == (2 / 3, 2 / 4)
    assert f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # Fewer predictions than k: precision is over the predictions made.
    assert prf_at_k(["neural networks"], gold, 10)[0] == 1.0
    assert prf_at_k([], gold, 10) == (0.0, 0.0, 0.0)
    metrics = keyphrase_metrics([predicted, []], [gold, gold], ks=(3,))
    assert metrics["f1_at_3"] == pytest.approx(f1 / 2)
    assert metrics["precision_at_3"] == pytest.approx(1 / 3)


def test_ngram_candidates_skip_stop_words_punctuation_and_numbers():
    tokens = "the neural network , trained in 2019 , learns fast-moving targets".split()
    candidates = {" ".join(c) for c in ngram_candidates(tokens)}
    assert {"neural network", "neural", "trained", "fast-moving targets", "learns fast-moving targets"} <= candidates
    assert not {c for c in candidates if "the" in c.split() or "," in c or c == "2019" or "in" in c.split()}


def test_tfidf_weights_count_times_inverse_document_frequency():
    corpus = [["quantum", "games"], ["quantum", "theory"], ["game", "theory"], ["quantum", "quantum", "dots"]]
    baseline = TfIdfBaseline(corpus)
    ranking = dict(baseline.rank(corpus[3]))
    n = len(corpus)
    # "quantum" is in 3 documents, "dots" in 1, "quantum dots" in 1.
    assert ranking["quantum"] == pytest.approx(2 * math.log((n + 1) / (3 + 1)))
    assert ranking["dots"] == pytest.approx(math.log((n + 1) / (1 + 1)))
    assert ranking["quantum dots"] == ranking["dots"]
    assert ranking["quantum quantum dots"] == pytest.approx(math.log((n + 1) / 2))


def test_word_statistics_tables_group_words_by_stem_and_give_their_idf():
    words = Vocabulary(["network", "networks", "neural", "the"])  # ids 2..5; 0 padding, 1 OOV
    documents = [["the", "neural", "network"], ["the", "networks"], ["the", "cat"]]
    groups, idf = word_statistics_tables(words, documents)
    assert groups[0] == groups[1] == 0  # padding, OOV: alone
    assert groups[2] == groups[3] != groups[4] and len({groups[2], groups[4], groups[5]}) == 3
    # "network(s)": 2 of 3 documents; "neural": 1; "the": 3; unseen (OOV): 0
    np.testing.assert_allclose(
        idf, [0.0, math.log(4), math.log(4 / 3), math.log(4 / 3), math.log(4 / 2), math.log(4 / 4)], rtol=1e-6
    )


def _liaad_zip(path, documents, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for doc_id, (text, keys) in documents.items():
            archive.writestr(f"Set/docsutf8/{doc_id}.txt", text)
            archive.writestr(f"Set/keys/{doc_id}.key", keys)
    return path


def test_a_damaged_zip_entry_is_named_not_a_zlib_traceback(tmp_path):
    path = _liaad_zip(tmp_path / "set.zip", {"1": ("recurrent networks " * 200, "recurrent networks\n")})
    data = bytearray(path.read_bytes())
    start = data.index(b"Set/docsutf8/1.txt") + len("Set/docsutf8/1.txt")
    for offset in range(start + 10, start + 40):  # inside the deflated bytes, after the local header
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match=r"set.zip:Set/docsutf8/1.txt: damaged entry"):
        read_liaad_zip(path)


def test_an_entry_too_large_for_a_document_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import pipelines.keyphrases as keyphrases

    monkeypatch.setattr(keyphrases, "MAX_ENTRY_BYTES", 1_000_000)
    path = _liaad_zip(tmp_path / "bomb.zip", {"1": (b"\0" * 5_000_000, "a key\n")})
    assert path.stat().st_size < 50_000  # five megabytes of zeros deflate to a few kilobytes
    with pytest.raises(DataFormatError, match=r"bomb.zip:Set/docsutf8/1.txt: 5,000,000 bytes once decompressed"):
        read_liaad_zip(path)
