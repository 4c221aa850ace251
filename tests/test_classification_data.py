"""Text classification sources, splits and metrics."""

import zipfile
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from pipelines.classification import classification_metrics, confusion_matrix
from pipelines.classification import load_text_dataset, split_indices, stratified_folds
from pipelines.sources import DataFormatError, DataNotFoundError
from pipelines.text import SentenceTokenizer
from tests.support import SHARED_DATA


def test_sentence_polarity_through_nltk_readers():
    dataset = load_text_dataset("mr", SHARED_DATA)
    assert Counter(e.label for e in dataset.examples) == {"neg": 5331, "pos": 5331}
    # The same sentences as the corpus file itself, one a line.
    archive = zipfile.ZipFile(SHARED_DATA / "nltk_data" / "corpora" / "sentence_polarity.zip")
    raw = archive.read("sentence_polarity/rt-polarity.pos").decode("latin-1").splitlines()
    positives = [e.text for e in dataset.examples if e.label == "pos"]
    assert positives[-1].split() == raw[-1].split()
    assert positives[0].split() == raw[0].split()


def test_movie_reviews_are_whole_documents():
    dataset = load_text_dataset("polarity", SHARED_DATA)
    assert Counter(e.label for e in dataset.examples) == {"neg": 1000, "pos": 1000}
    assert np.mean([len(e.text.split()) for e in dataset.examples]) > 700


def test_any_nltk_categorized_corpus_by_name():
    assert len(load_text_dataset("nltk:sentence_polarity", SHARED_DATA).examples) == 10662
    with pytest.raises(DataFormatError, match="not categorized"):
        load_text_dataset("nltk:treebank", SHARED_DATA)


def test_csv_source_reads_text_and_label_and_counts_skips(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('text,label\n"great, fun",pos\n,neg\nawful,neg\n"dull",\n', encoding="utf-8")
    dataset = load_text_dataset(f"csv:{path}")
    assert [(e.text, e.label) for e in dataset.examples] == [("great, fun", "pos"), ("awful", "neg")]
    assert dataset.skipped == {"empty text": 1, "empty label": 1}


def test_csv_without_the_columns_names_what_is_missing(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("sentence,sentiment\nhi,pos\n")
    with pytest.raises(DataFormatError, match=r"bad.csv: .*missing text, label, found \['sentence', 'sentiment'\]"):
        load_text_dataset(f"csv:{path}")


def test_folder_source_has_a_class_per_file(tmp_path):
    (tmp_path / "pos.txt").write_text("loved it\n\ngreat\n")
    (tmp_path / "neg.txt").write_text("hated it\n")
    dataset = load_text_dataset(f"folder:{tmp_path}")
    assert sorted((e.label, e.text) for e in dataset.examples) == [
        ("neg", "hated it"), ("pos", "great"), ("pos", "loved it"),
    ]  # fmt: skip


def test_folder_with_an_empty_class_or_bad_bytes_is_an_error(tmp_path):
    (tmp_path / "pos.txt").write_text("loved it\n")
    (tmp_path / "neg.txt").write_text("\n")
    with pytest.raises(DataFormatError, match=r"neg.txt: class 'neg' has no examples"):
        load_text_dataset(f"folder:{tmp_path}")
    (tmp_path / "neg.txt").write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(DataFormatError, match=r"neg.txt:2: not valid UTF-8"):
        load_text_dataset(f"folder:{tmp_path}")


def test_one_label_is_not_a_classification_problem(tmp_path):
    (tmp_path / "pos.txt").write_text("loved it\n")
    with pytest.raises(DataFormatError, match="at least two labels"):
        load_text_dataset(f"folder:{tmp_path}")


def test_unknown_sources_and_missing_files_are_named():
    with pytest.raises(DataNotFoundError, match="--dataset .imdb.: no such data set"):
        load_text_dataset("imdb")
    with pytest.raises(DataNotFoundError, match="csv:/no/such.csv: no such file"):
        load_text_dataset("csv:/no/such.csv")


def test_split_is_80_10_10_stratified_disjoint_and_seeded():
    labels = ["a"] * 700 + ["b"] * 300
    parts = split_indices(labels, seed=3)
    assert [len(parts[s]) for s in ("train", "valid", "test")] == [800, 100, 100]
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(1000))
    assert Counter(labels[i] for i in parts["test"]) == {"a": 70, "b": 30}
    again = split_indices(labels, seed=3)
    assert all(np.array_equal(parts[s], again[s]) for s in parts)
    assert not np.array_equal(parts["test"], split_indices(labels, seed=4)["test"])


def test_cross_validation_test_folds_partition_the_data():
    labels = ["a"] * 55 + ["b"] * 45
    tests = [split_indices(labels, seed=0, fold=k, folds=5)["test"] for k in range(5)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(100))
    for k in range(5):
        parts = split_indices(labels, seed=0, fold=k, folds=5)
        assert not set(parts["train"]) & (set(parts["valid"]) | set(parts["test"]))
        assert len(parts["test"]) == 20
    assert np.bincount(stratified_folds(labels, 5, 0)).tolist() == [20] * 5


def test_accuracy_and_macro_f1_against_hand_computation():
    gold = ["a", "a", "b", "b"]
    predicted = ["a", "b", "b", "b"]
    # a: P 1, R 1/2, F1 2/3.  b: P 2/3, R 1, F1 4/5.
    metrics = classification_metrics(gold, predicted, ["a", "b"])
    assert metrics["accuracy"] == 0.75
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert confusion_matrix(gold, predicted, ["a", "b"]).tolist() == [[1, 1], [0, 2]]


def test_tokenizer_keeps_punctuation_as_tokens_and_the_last_words():
    tokenizer = SentenceTokenizer(max_length=5, punctuation="split", keep="last")
    tokens = tokenizer(tf.constant(["It's a gorgeous, witty, seductive movie.", "Dull -- really..."]))
    assert tokens.numpy().tolist() == [
        [b"witty", b",", b"seductive", b"movie", b"."],
        [b"dull", b"--", b"really", b"...", b""],
    ]


def test_a_csv_text_longer_than_pythons_field_limit_loads(tmp_path):
    long_text = "great " * 40_000  # 240,000 characters; Python's csv module stops at 131,072
    path = tmp_path / "long.csv"
    path.write_text(f'text,label\n"{long_text}",pos\nbad film,neg\n')
    dataset = load_text_dataset(f"csv:{path}")
    assert len(dataset.examples[0].text) == len(long_text.strip())


def test_an_unclosed_quote_swallowing_the_file_is_refused_with_its_line(tmp_path, monkeypatch):
    import pipelines.classification as classification

    monkeypatch.setattr(classification, "MAX_FIELD_CHARACTERS", 1000)
    path = tmp_path / "open.csv"
    path.write_text('text,label\nfine,pos\n"never closed,neg\n' + "more words,pos\n" * 200)
    with pytest.raises(DataFormatError, match=r"open.csv:\d+: not a readable CSV: a field over 1,000 characters"):
        load_text_dataset(f"csv:{path}")


@pytest.mark.parametrize("line", [1, 2, 351])
def test_a_bad_byte_is_reported_on_its_own_line(tmp_path, line):
    rows = [b"text,label"] + [b"a fine sentence number %d,pos" % i for i in range(400)]
    rows[line - 1] = rows[line - 1].replace(b"fine", b"fin\xe9") if line > 1 else b"t\xe9xt,label"
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"\n".join(rows) + b"\n")
    with pytest.raises(DataFormatError, match=rf"latin1.csv:{line}: not valid UTF-8 \(byte 0xe9\)"):
        load_text_dataset(f"csv:{path}")


def test_offline_an_nltk_corpus_not_on_disk_is_not_downloaded(tmp_path, monkeypatch):
    import nltk

    def no_download(*args, **kwargs):
        raise AssertionError("RNN_SUITE_OFFLINE=1 must not download")

    monkeypatch.setattr(nltk, "download", no_download)
    monkeypatch.setenv("RNN_SUITE_OFFLINE", "1")
    monkeypatch.setenv("RNN_SUITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(nltk.data, "path", [])  # NLTK's own folders: none either
    with pytest.raises(DataNotFoundError, match="RNN_SUITE_OFFLINE is set, so it was not downloaded"):
        load_text_dataset("nltk:abc", tmp_path)


@pytest.mark.parametrize("name", ["__class__", "data", "nosuchcorpus"])
def test_an_nltk_name_that_is_no_corpus_is_named(tmp_path, name):
    with pytest.raises(DataNotFoundError, match=f"NLTK has no corpus named '{name}'"):
        load_text_dataset(f"nltk:{name}", tmp_path)
