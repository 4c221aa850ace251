"""Reversible tokenization of raw sentences into words or WordPiece subwords (tensorflow-text).

Both kinds of units follow WordPiece's convention: a white-space-separated word is written as its
first piece, then its other pieces marked "##" ("hill." -> "hill", "##."), so that

    detokenize(tokenize(text)) == text        (white space normalized to single spaces)

and a translation is scored on the text it spells, as papers score with sacreBLEU.

- "words": each word split into runs of letters and digits and single other characters
  ("Mann's" -> "Mann", "##'", "##s"); the vocabulary is the frequent units of the training split.
- "wordpiece": each word split by `tf_text.WordpieceTokenizer` (longest match first) over a
  vocabulary learnt from the training split's word counts (`learn_wordpieces`), the words split
  at punctuation for the learner, so that "bushes." is spelt "bushes", "##."; a word it cannot
  spell becomes OOV as a whole.

Case is kept (German nouns are capitalized, and cased BLEU counts it); text is NFKC-normalized.
`SubwordTokenizer` is the Keras layer a saved model carries, so that it reads raw text.
"""

import hashlib
import json
import os
import tempfile
from collections import Counter

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from layers.base import PACKAGE
from pipelines.sources import cache_dir
from pipelines.vocab import END, OOV, PAD, START

UNITS = ("words", "wordpiece")
JOINER = "##"
# A piece boundary of "words": around every character that is neither a letter nor a digit.
NOT_ALPHANUMERIC = r"[^\pL\pN]"
LEARNER_INPUT = "words split at punctuation"  # part of a learnt vocabulary's cache key


def normalize(text):
    return tf_text.normalize_utf8(tf.convert_to_tensor(text, dtype=tf.string), "NFKC")


def split_words(text):
    """Raw sentences (batch,) -> white-space-separated words, ragged (batch, words)."""
    return tf_text.WhitespaceTokenizer().tokenize(normalize(text))


def alphanumeric_runs(words):
    """Words (batch, words) -> their runs of letters and digits and single other characters (batch, words, runs)."""
    return tf_text.regex_split(words, NOT_ALPHANUMERIC, keep_delim_regex_pattern=NOT_ALPHANUMERIC)


def word_units(words):
    """Words (batch, words) -> "words" units (batch, units), pieces after the first marked "##"."""
    return mark_continuations(alphanumeric_runs(words))


def mark_continuations(pieces):
    """Ragged (batch, words, pieces) strings -> (batch, units), every piece but a word's first prefixed "##"."""
    per_word = pieces.values  # (all words, pieces)
    position = tf.ragged.range(per_word.row_lengths())
    marked = tf.where(position.flat_values > 0, JOINER + per_word.flat_values, per_word.flat_values)
    return pieces.with_flat_values(marked).merge_dims(1, 2)


def wordpiece_tokenizer(pieces):
    """`tf_text.WordpieceTokenizer` over the pieces (a list), an unknown word as OOV."""
    table = tf.lookup.StaticVocabularyTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(pieces), tf.range(len(pieces), dtype=tf.int64)),
        num_oov_buckets=1,
    )
    return tf_text.WordpieceTokenizer(
        table, suffix_indicator=JOINER, max_bytes_per_word=100, unknown_token=OOV, token_out_type=tf.string
    )


def units_of(texts, unit, pieces_vocabulary=None):
    """Raw sentences (a list of str) -> their units (lists of str), eagerly (for fitting and data)."""
    if not texts:
        return []
    units = SubwordTokenizer(unit, pieces_vocabulary).units(tf.constant(texts))
    return [[u.decode("utf-8") for u in row] for row in units.to_list()]


def detokenize(units):
    """Units (a list of str) -> the text they spell: joined by spaces, "##" pieces glued on."""
    text = ""
    for unit in units:
        if unit in (PAD, START, END):
            continue
        if unit.startswith(JOINER) and len(unit) > len(JOINER):
            text += unit[len(JOINER) :]
        else:
            text += (" " if text else "") + unit
    return text


def word_counts(texts):
    """(piece, count) of the training words split where "words" units split them ("bushes." counts
    as "bushes" and "."): the learnt pieces are not spent on a word's variants with punctuation
    attached, and WordPiece's longest match still spells "bushes." as "bushes", "##."."""
    runs = alphanumeric_runs(split_words(tf.constant(texts)))
    return dict(Counter(run.decode("utf-8") for run in runs.flat_values.numpy()))


def learn_wordpieces(texts, size, cache=True):
    """A WordPiece vocabulary (a list of pieces, no special tokens) of about `size` pieces, learnt
    from the word counts of `texts` (the training split's sentences only) by tensorflow-text's
    learner. It takes minutes on Multi30k, so the result is kept in the user cache under a hash
    of the texts and the size, and a second run (a tuning trial, a resumed training) reads it."""
    key = hashlib.sha256(("\n".join(texts) + f"\n{size}\n{LEARNER_INPUT}").encode("utf-8")).hexdigest()[:32]
    path = cache_dir() / "wordpieces" / f"{key}.json"
    if cache and path.is_file():
        return json.loads(path.read_text())
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    print(f"learning a WordPiece vocabulary of about {size} pieces from {len(texts)} sentences ...", flush=True)

    pieces = learner.learn(
        word_counts(texts), vocab_size=size, reserved_tokens=[], upper_thresh=10_000_000, lower_thresh=2,
        num_iterations=4, max_input_tokens=5_000_000, max_token_length=50, max_unique_chars=1000,
        slack_ratio=0.05, include_joiner_token=True, joiner=JOINER,
    )  # fmt: skip
    pieces = [piece for piece in pieces if piece not in (PAD, OOV, START, END, JOINER)]
    if cache:
        atomic_write(path, json.dumps(pieces, ensure_ascii=False))
    return pieces


def atomic_write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SubwordTokenizer(keras.layers.Layer):
    """Raw sentences (batch,) -> units (batch, max_length) strings, padded with "" and cut at
    `max_length` (the first units kept).

    Args:
        unit: "words" or "wordpiece".
        pieces: The WordPiece vocabulary (a list of str; "wordpiece" only).
        max_length: Units kept per sentence.
    """

    def __init__(self, unit="words", pieces=None, max_length=100, **kwargs):
        super().__init__(**kwargs)
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
        if unit == "wordpiece" and not pieces:
            raise ValueError("a wordpiece tokenizer needs its vocabulary of pieces")
        self.unit = unit
        self.pieces = list(pieces or [])
        self.max_length = max_length
        self.tokenizer = wordpiece_tokenizer(self.pieces) if unit == "wordpiece" else None

    def units(self, text):
        """Ragged units (batch, units), not cut."""
        text = tf.convert_to_tensor(text, dtype=tf.string)
        if text.shape.rank == 2:  # a (batch, 1) column, as a DataFrame gives it
            text = tf.squeeze(text, axis=-1)
        words = split_words(text)
        return word_units(words) if self.tokenizer is None else self.tokenizer.tokenize(words).merge_dims(1, 2)

    def call(self, text):
        return self.units(text)[:, : self.max_length].to_tensor(default_value=PAD, shape=[None, self.max_length])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.max_length)

    def get_config(self):
        return {**super().get_config(), "unit": self.unit, "pieces": self.pieces, "max_length": self.max_length}
