"""The ATIS/SNIPS reader, vocabularies, the raw-sentence tokenizer and the batching pipeline."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipelines.slots import slot_metrics
from layers.context import KEY_RANGE
from pipelines.slots import (
    drop_words,
    SlotExample,
    SlotVocabularies,
    normalize_words,
    read_split,
    slot_dataset,
    training_pairs,
)
from pipelines.sources import DataFormatError
from pipelines.text import (
    ALPHABET_SIZE,
    CharacterIds,
    SentenceTokenizer,
    TokenKeys,
    WordLookup,
    bucket_edges,
    character_id_rows,
    character_ids,
    encode_words,
    token_key_rows,
    token_keys,
    word_signatures,
)
from pipelines.vocab import OOV, PAD, Vocabulary
from tests.support import SHARED_DATA

ATIS = SHARED_DATA / "atis"


@pytest.fixture(scope="module")
def atis():
    return {split: read_split(ATIS / split) for split in ("train", "valid", "test")}


def test_reads_the_standard_atis_split(atis):
    assert [len(atis[s]) for s in ("train", "valid", "test")] == [4478, 500, 893]
    first = atis["train"][0]
    assert first.words[:3] == ("i", "want", "to")
    assert first.tags[5] == "B-fromloc.city_name" and first.words[5] == "baltimore"
    assert first.intent == "atis_flight"
    assert all(len(e.words) == len(e.tags) for split in atis.values() for e in split)


def write_split(folder, words, tags, intents):
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (("seq.in", words), ("seq.out", tags), ("label", intents)):
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


@pytest.mark.parametrize(
    "words, tags, intents, message",
    [
        ("a b\nc d e\n", "O O\nO O\n", "x\ny\n", r"seq.out:2: 2 tags for 3 words in .*seq.in:2"),
        ("a b\n\nc\n", "O O\nO\nO\n", "x\ny\nz\n", r"seq.in:2: empty line"),
        ("a b\nc\n", "O O\nO\n", "x\n\n", r"label:2: empty line"),
        ("a\nb\n", "O\nO\n", "x\n", r"as many lines each.*seq.in: 2.*label: 1"),
        ("a b\n", "O X-city\n", "x\n", r"seq.out:1: tag 2 'X-city' is not an IOB tag"),
        (b"a b\nc \xff d\n", "O O\nO O O\n", "x\ny\n", r"seq.in:2: not valid UTF-8 \(byte 0xff at column 3\)"),
    ],
    ids=["count-mismatch", "empty-words", "empty-intent", "line-counts", "bad-tag", "encoding"],
)
def test_malformed_files_are_errors_naming_file_and_line(tmp_path, words, tags, intents, message):
    folder = write_split(tmp_path / "split", words, tags, intents)
    with pytest.raises(DataFormatError, match=message):
        read_split(folder)


def test_vocabulary_ids_match_keras_string_lookup():
    vocab = Vocabulary.build([["b", "a", "b"], ["c", "b", "a"]])
    assert vocab.tokens == ["b", "a", "c"]  # by frequency, ties alphabetically
    lookup = vocab.lookup_layer()
    words = ["a", "b", "c", "zzz", PAD]
    assert vocab.encode(words) == [3, 2, 4, 1, 0]
    assert lookup(tf.constant(words)).numpy().tolist() == vocab.encode(words)
    assert vocab.decode([0, 1, 2]) == [PAD, OOV, "b"]
    labels = Vocabulary(["x", "y"], padding=False)
    assert labels.encode(["y", "nope"]) == [2, 0]
    assert labels.lookup_layer()(tf.constant(["y", "nope"])).numpy().tolist() == [2, 0]


def test_a_bounded_vocabulary_puts_start_and_end_after_oov_as_keras_string_lookup_does(tmp_path):
    from pipelines.vocab import END, START

    vocab = Vocabulary.build([["b", "a", "b"], ["c", "b", "a"]], bounds=True)
    assert vocab.specials == [PAD, OOV, START, END] and (vocab.start_id, vocab.end_id) == (2, 3)
    assert vocab.encode(["a", "zzz"], bounds=True) == [2, 5, 1, 3]
    # Keras' own StringLookup over the same tokens, built here independently of the class.
    keras_lookup = keras.layers.StringLookup(vocabulary=[START, END, "b", "a", "c"], mask_token=PAD, oov_token=OOV)
    tokens = [START, "a", "b", "c", "zzz", END, PAD]
    assert keras_lookup(tf.constant(tokens)).numpy().tolist() == vocab.encode(tokens)
    assert vocab.lookup_layer()(tf.constant(tokens)).numpy().tolist() == vocab.encode(tokens)
    inverse = vocab.lookup_layer(invert=True)(tf.constant([2, 4, 3]))
    assert [t.decode() for t in inverse.numpy()] == [START, "b", END]
    vocab.save(tmp_path / "v.json")
    loaded = Vocabulary.load(tmp_path / "v.json")
    assert loaded.bounds and loaded.encode(tokens) == vocab.encode(tokens)
    with pytest.raises(ValueError, match="reserved token"):
        Vocabulary(["a", START])
    with pytest.raises(ValueError, match="bounds=True"):
        Vocabulary(["a"]).encode(["a"], bounds=True)
    # With unknown-word signatures, the signature lookup layer gives the same ids.
    signed = Vocabulary(["a", "[UNK:aaa]"], signatures=True, bounds=True)
    assert signed.lookup_layer()(tf.constant([START, "xyz", "a", END])).numpy().tolist() == [2, 5, 4, 3]


def test_vocabulary_round_trips_through_json(tmp_path, atis):
    vocabularies = SlotVocabularies.build(atis["train"], SentenceTokenizer())
    vocabularies.save(tmp_path)
    loaded = SlotVocabularies.load(tmp_path)
    for name in ("words", "tags", "intents"):
        assert getattr(loaded, name).tokens == getattr(vocabularies, name).tokens
    assert loaded.intents.padding is False
    assert loaded.words.signatures is False
    SlotVocabularies.build(atis["train"], SentenceTokenizer(), signatures=True).save(tmp_path / "s")
    assert SlotVocabularies.load(tmp_path / "s").words.signatures is True


@pytest.mark.parametrize("dataset", ["atis", "snips"])
def test_tokenizer_gives_back_the_data_sets_own_tokens(dataset):
    """Joining a sentence's words and tokenizing the raw text returns the (case-folded) words."""
    examples = [
        e
        for split in ("train", "valid", "test")
        if (SHARED_DATA / dataset / split).exists()
        for e in read_split(SHARED_DATA / dataset / split)
    ]
    tokenizer = SentenceTokenizer(max_length=64)
    tokens = tokenizer.tokenize(tf.constant([" ".join(e.words) for e in examples])).to_list()
    expected = normalize_words((e.words for e in examples), tokenizer)
    different = [(t, e) for t, e in zip(tokens, expected) if [w.decode() for w in t] != e]
    # The one exception: SNIPS' "… " as a sentence's last word, which NFKC folds to "...",
    # read as the sentence's end.
    assert len(different) <= (1 if dataset == "snips" else 0), different[:3]


def test_tokenizer_splits_raw_text_like_the_data():
    tokenizer = SentenceTokenizer(max_length=6)
    tokens = tokenizer(tf.constant(["Flights from St. Louis to Denver, please!", "I'd like R&B (live)."]))
    assert tokens.numpy().tolist() == [
        [b"flights", b"from", b"st.", b"louis", b"to", b"denver"],  # cut at max_length
        [b"i'd", b"like", b"r&b", b"live", b"", b""],
    ]


def test_digit_folding_gives_unseen_numbers_the_shape_of_seen_ones():
    tokenizer = SentenceTokenizer(max_length=4, fold_digits=True)
    assert tokenizer(tf.constant(["Flight 811 at 9PM"])).numpy().tolist() == [[b"flight", b"000", b"at", b"0pm"]]
    train = [SlotExample(("flight", "345"), ("O", "B-flight_number"), "flight")]
    vocabularies = SlotVocabularies.build(train, tokenizer)
    assert "000" in vocabularies.words
    assert normalize_words([("flight", "811")], tokenizer) == [["flight", "000"]]


def test_word_signatures_keep_a_words_shape():
    words = ["dh8", "dc10", "l1011", "dtw", "o'hare", "denver", "bh", "77", "Ünter"]
    shapes = [s.decode() for s in word_signatures(tf.constant(words)).numpy()]
    assert shapes == [
        "[UNK:aa0]", "[UNK:aa0]", "[UNK:a0]", "[UNK:aaa]", "[UNK:a'aaaa]", "[UNK:aaaa]", "[UNK:aa]",
        "[UNK:0]", "[UNK:aaaa]",
    ]  # fmt: skip


def test_unseen_words_get_their_signature_in_the_pipeline_and_the_saved_lookup(tmp_path):
    tokenizer = SentenceTokenizer(max_length=6, fold_digits=True)
    train = [
        SlotExample(("flights", "to", "lax", "on", "dc10"), ("O", "O", "B-to", "O", "B-craft"), "flight"),
        SlotExample(("flights", "to", "denver"), ("O", "O", "B-to"), "flight"),
    ]
    words = SlotVocabularies.build(train, tokenizer, signatures=True).words
    # Every training word's shape is in the vocabulary, after the words.
    assert words.tokens[-4:] == ["[UNK:aa0]", "[UNK:aa]", "[UNK:aaa]", "[UNK:aaaa]"]
    assert words.signatures and "[UNK:a]" not in words
    sentence = ["flights", "to", "dtw", "on", "dh0", "x'y"]  # dtw, dh8 unseen; x'y of an unseen shape
    expected = [words.id("flights"), words.id("to"), words.id("[UNK:aaa]"), words.id("on"),
                words.id("[UNK:aa0]"), words.oov_id]  # fmt: skip
    assert encode_words([sentence], words) == [expected]
    lookup = words.lookup_layer(name="word_ids")
    assert isinstance(lookup, WordLookup)
    model = keras.Sequential([keras.Input((), dtype="string"), tokenizer, lookup])
    model.save(tmp_path / "lookup.keras")
    reloaded = keras.models.load_model(tmp_path / "lookup.keras")
    ids = reloaded(tf.constant(["Flights to DTW on DH8 x'y", "to lax"])).numpy().tolist()
    assert ids == [expected, [words.id("to"), words.id("lax"), 0, 0, 0, 0]]
    # Without signatures every unseen word is the one OOV id, as before.
    plain = SlotVocabularies.build(train, tokenizer).words
    assert encode_words([sentence], plain)[0][2:] == [plain.oov_id, plain.id("on"), plain.oov_id, plain.oov_id]


def test_bucket_edges_cover_the_longest_sentence():
    assert bucket_edges(46) == [8, 12, 16, 20, 24, 32, 40, 48]
    assert bucket_edges(8) == [8]
    assert bucket_edges(600)[-1] == 600


def test_batches_are_bucketed_complete_and_aligned(atis):
    tokenizer = SentenceTokenizer()
    vocabularies = SlotVocabularies.build(atis["train"], tokenizer)
    examples = atis["valid"]
    batches = list(slot_dataset(examples, vocabularies, tokenizer, batch_size=32))
    expected_count = slot_dataset(examples, vocabularies, tokenizer, 32).cardinality().numpy()
    assert len(batches) == expected_count
    seen = np.concatenate([b["index"].numpy() for b in batches])
    assert sorted(seen.tolist()) == list(range(len(examples)))
    edges = bucket_edges(max(len(e.words) for e in examples))
    for batch in batches:
        width = batch["words"].shape[1]
        assert width in edges
        for row, index in enumerate(batch["index"].numpy()):
            example = examples[index]
            n = len(example.words)
            assert batch["words"][row, :n].numpy().tolist() == vocabularies.words.encode(
                normalize_words([example.words], tokenizer)[0]
            )
            assert batch["tags"][row, :n].numpy().tolist() == vocabularies.tags.encode(example.tags)
            assert not batch["words"][row, n:].numpy().any()
        inputs, targets, weights = training_pairs(batch)
        np.testing.assert_array_equal(weights["slots"].numpy(), (inputs.numpy() != 0).astype("float32"))


def test_unseen_tags_and_intents_are_oov_and_scored_as_errors():
    train = [SlotExample(("to", "boston"), ("O", "B-city"), "flight")]
    vocabularies = SlotVocabularies.build(train, SentenceTokenizer())
    assert vocabularies.tags.encode(["B-airport"]) == [vocabularies.tags.oov_id]
    assert vocabularies.intents.id("airfare") == vocabularies.intents.oov_id
    gold = [
        SlotExample(("to", "boston"), ("O", "B-city"), "flight"),
        SlotExample(("at", "jfk"), ("O", "B-airport"), "airfare"),
    ]
    predicted_tags = [["O", "B-city"], ["O", "B-city"]]
    metrics = slot_metrics(gold, predicted_tags, ["flight", "flight"])
    # Gold chunks: city, airport; predicted: city, city. One right: P = R = F1 = 1/2.
    assert metrics == {"slot_f1": 0.5, "intent_accuracy": 0.5, "sentence_accuracy": 0.5}


def test_slot_f1_follows_conlleval_chunks():
    """seqeval's default mode: an I- tag without B- starts a chunk; a partial chunk is wrong."""
    gold = [SlotExample(("a", "b", "c", "d"), ("B-x", "I-x", "O", "B-y"), "i")]
    # Chunks: gold {x: 0-1, y: 3}; predicted {x: 0, x: 1 (I- after O starts one), y: 3}.
    metrics = slot_metrics(gold, [["B-x", "O", "I-x", "B-y"]], ["i"])
    precision, recall = 1 / 3, 1 / 2
    assert metrics["slot_f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert metrics["sentence_accuracy"] == 0.0


def test_word_dropout_replaces_words_by_oov_at_the_rate_and_never_padding():
    words = tf.constant(np.tile(np.r_[np.arange(2, 52), np.zeros(50)], (200, 1)).astype("int32"))
    batch = {"words": words, "tags": words}
    dropped = drop_words(0.25, oov_id=1, seed=3)(batch)["words"].numpy()
    real = words.numpy() != 0
    changed = dropped != words.numpy()
    assert not changed[~real].any()  # padding stays padding
    assert (dropped[changed] == 1).all()
    assert changed[real].mean() == pytest.approx(0.25, abs=0.02)
    assert drop_words(0.0, oov_id=1)(batch)["words"].numpy().tolist() == words.numpy().tolist()


def test_word_dropout_puts_the_signature_in_a_dropped_words_place():
    words = tf.constant(np.tile(np.r_[np.arange(2, 52), np.zeros(50)], (200, 1)).astype("int32"))
    signatures = tf.where(words > 0, words + 1000, 0)
    dropped = drop_words(0.25, oov_id=1, seed=3)({"words": words, "signatures": signatures})["words"].numpy()
    changed = dropped != words.numpy()
    assert (dropped[changed] == words.numpy()[changed] + 1000).all()
    assert changed[words.numpy() != 0].mean() == pytest.approx(0.25, abs=0.02)


def test_character_ids_are_code_points_cut_and_padded():
    ids = character_ids(tf.constant([["dtw", "", "transcontinental"], ["m80", "é€", "a"]]), 6).numpy()
    expected = [
        [[ord("d") + 1, ord("t") + 1, ord("w") + 1, 0, 0, 0], [0] * 6, [ord(c) + 1 for c in "transc"]],
        [
            [ord("m") + 1, ord("8") + 1, ord("0") + 1, 0, 0, 0],
            [ord("é") + 1, ALPHABET_SIZE - 1, 0, 0, 0, 0],
            [ord("a") + 1, 0, 0, 0, 0, 0],
        ],
    ]
    np.testing.assert_array_equal(ids, expected)
    rows = character_id_rows([["ab", "c"], [], ["d"]], 3)
    assert [r.shape for r in rows] == [(2, 3), (0, 3), (1, 3)]
    np.testing.assert_array_equal(rows[0], [[98, 99, 0], [100, 0, 0]])
    layer = CharacterIds(4)
    np.testing.assert_array_equal(layer(tf.constant([["ab", ""]])).numpy(), [[[98, 99, 0, 0], [0, 0, 0, 0]]])


def test_token_keys_are_the_same_in_the_pipeline_and_in_a_saved_model(tmp_path):
    rows = [["quantum", "games", "quantum", "nash"], ["games"], []]
    keys = token_key_rows(rows)
    assert [len(k) for k in keys] == [4, 1, 0]
    assert keys[0][0] == keys[0][2] == token_keys("quantum").numpy() and keys[0][1] == keys[1][0]
    assert len({keys[0][0], keys[0][1], keys[0][3]}) == 3
    assert all(0 <= k < KEY_RANGE for row in keys for k in row)
    tokens = keras.Input((None,), dtype="string")
    model = keras.Model(tokens, TokenKeys()(tokens))
    model.save(tmp_path / "keys.keras")
    loaded = keras.saving.load_model(tmp_path / "keys.keras")
    np.testing.assert_array_equal(loaded.predict_on_batch(tf.constant([rows[0]])), [keys[0]])
