"""Vocabularies of words and labels, with padding and out-of-vocabulary ids.

Ids follow `keras.layers.StringLookup`: with padding, 0 is the padding
(mask) token "" and 1 the OOV token; without, 0 is OOV. With `bounds`, the
sequence bounds "[START]" and "[END]" follow, then the tokens. So the lookup
layer that a logged model carries gives the ids the training pipeline gave.
"""

import json
from collections import Counter
from pathlib import Path

import keras
import tensorflow as tf

from layers.base import PACKAGE

PAD = ""
OOV = "[UNK]"
# The sequence bounds a generating model reads first and writes last (`bounds=True`).
START = "[START]"
END = "[END]"
# An unknown word's signature token: "[UNK:aa0]" for "dh8" (see `word_signatures`).
SIGNATURE_PREFIX = "[UNK:"


class Vocabulary:
    """Tokens with ids; `signatures`: some tokens are unknown-word signatures ("[UNK:aaa]").

    A vocabulary with signatures maps a word it does not hold to its
    signature's id (the word's shape), and only a word whose shape was never
    seen in training to the OOV id. Those ids need TensorFlow's string ops:
    `pipelines.text.encode_words` and `WordLookup` give them.

    `bounds`: the vocabulary of a generated sequence (a decoder's input and output): it holds
    START, which a decoder reads before the first token, and END, which it writes after the
    last (`encode(tokens, bounds=True)`). Both count among `specials`; a generator's output
    layer may give END, never PAD or START.
    """

    def __init__(self, tokens, padding=True, signatures=False, bounds=False):
        tokens = list(tokens)
        for reserved in (PAD, OOV, START, END):
            if reserved in tokens:
                raise ValueError(f"vocabulary tokens may not include the reserved token {reserved!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.tokens = tokens
        self.padding = padding
        self.signatures = signatures
        self.bounds = bounds
        self.specials = ([PAD, OOV] if padding else [OOV]) + ([START, END] if bounds else [])
        self._ids = {token: index for index, token in enumerate(self.specials + tokens)}

    @classmethod
    def build(cls, sequences, min_count=1, padding=True, signatures=(), bounds=False, max_size=None):
        """From an iterable of token sequences: the most frequent first, ties alphabetically; with
        `max_size`, only that many tokens (the special ones not counted).

        `signatures`: the unknown-word signature tokens to add after the words
        (those of the training words, so every shape seen in training has one).
        """
        counts = Counter(token for sequence in sequences for token in sequence)
        kept = [t for t, c in counts.items() if c >= min_count and t not in (PAD, OOV, START, END)]
        kept = sorted(kept, key=lambda t: (-counts[t], t))[:max_size]
        signatures = sorted(set(signatures) - set(kept))
        return cls(kept + signatures, padding=padding, signatures=bool(signatures), bounds=bounds)

    def __len__(self):
        """Number of ids, the special ones included (the size of an output layer)."""
        return len(self.specials) + len(self.tokens)

    def __contains__(self, token):
        return token in self._ids and token not in self.specials

    @property
    def num_special(self):
        return len(self.specials)

    @property
    def pad_id(self):
        return 0 if self.padding else None

    @property
    def oov_id(self):
        return self.specials.index(OOV)

    @property
    def start_id(self):
        return self._ids[START] if self.bounds else None

    @property
    def end_id(self):
        return self._ids[END] if self.bounds else None

    def id(self, token):
        return self._ids.get(token, self.oov_id)

    def encode(self, tokens, signatures=None, bounds=False):
        """Ids of `tokens`; with `signatures` (one per token), an unknown token gets its signature's
        id; with `bounds`, between START's id and END's."""
        if signatures is None or not self.signatures:
            ids = [self.id(token) for token in tokens]
        else:
            ids = [self._ids.get(t, self.id(s)) for t, s in zip(tokens, signatures, strict=True)]
        if not bounds:
            return ids
        if not self.bounds:
            raise ValueError("encode(bounds=True) needs a vocabulary made with bounds=True")
        return [self.start_id, *ids, self.end_id]

    def decode(self, ids):
        table = self.specials + self.tokens
        return [table[i] for i in ids]

    def lookup_layer(self, invert=False, name=None):
        """A `keras.layers.StringLookup` giving (or, inverted, reading) these ids.

        With signatures, a `pipelines.text.WordLookup`, which gives an unknown
        word its signature's id.
        """
        if self.signatures and not invert:
            return WordLookup(self.lookup_tokens, padding=self.padding, name=name)
        return self.string_lookup(invert=invert, name=name)

    @property
    def lookup_tokens(self):
        """What `keras.layers.StringLookup` holds as its vocabulary: the bounds, then the tokens."""
        return ([START, END] if self.bounds else []) + self.tokens

    def string_lookup(self, invert=False, name=None):
        """The plain `keras.layers.StringLookup` of these ids (no signatures)."""
        return keras.layers.StringLookup(
            vocabulary=self.lookup_tokens,
            mask_token=PAD if self.padding else None,
            oov_token=OOV,
            num_oov_indices=1,
            invert=invert,
            name=name,
        )

    def to_dict(self):
        return {"tokens": self.tokens, "padding": self.padding, "signatures": self.signatures, "bounds": self.bounds}

    @classmethod
    def from_dict(cls, data):
        return cls(
            data["tokens"], padding=data["padding"], signatures=data.get("signatures", False),
            bounds=data.get("bounds", False),
        )  # fmt: skip

    def save(self, path):
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path):
        return cls.from_dict(json.loads(Path(path).read_text()))


def word_signatures(words):
    """The unknown-word signature of each word (a string tensor of any shape): its shape.

    Letters become `a` (a run of more than 4 cut to 4), a run of digits one
    `0`, other characters stay: "dh8" and "dc10" -> "[UNK:aa0]", "l1011" ->
    "[UNK:a0]", "dtw" -> "[UNK:aaa]", "o'hare" -> "[UNK:a'aaaa]", "denver" ->
    "[UNK:aaaa]". Short codes keep their length, which tells them from words.
    A model that meets an unseen airline code or aircraft type reads its
    shape where it would otherwise read one OOV vector for every unseen word
    (the unknown-word signatures of Petrov et al.'s parser, reduced to shape).
    """
    shape = tf.strings.regex_replace(words, r"\pL", "a")
    shape = tf.strings.regex_replace(shape, r"\pN", "0")
    shape = tf.strings.regex_replace(shape, "a{5,}", "aaaa")
    shape = tf.strings.regex_replace(shape, "0+", "0")
    return SIGNATURE_PREFIX + shape + "]"


@keras.saving.register_keras_serializable(package=PACKAGE)
class WordLookup(keras.layers.Layer):
    """Tokens -> word ids, an unknown word getting its signature's id (`word_signatures`).

    Ids as `keras.layers.StringLookup` gives them for `vocabulary` (padding 0,
    OOV 1), except that a word outside the vocabulary whose signature token is
    in it gets that token's id; only a word of a shape never seen is OOV.
    """

    def __init__(self, vocabulary, padding=True, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = list(vocabulary)
        self.padding = padding
        # Its vocabulary is `Vocabulary.lookup_tokens`: the bounds, if any, then the tokens.
        self.lookup = keras.layers.StringLookup(
            vocabulary=self.vocabulary, mask_token=PAD if padding else None, oov_token=OOV, num_oov_indices=1,
            name="string_lookup",
        )  # fmt: skip
        self.oov_id = 1 if padding else 0

    def build(self, input_shape):
        pass  # the lookup table is made with the layer

    def get_vocabulary(self):
        return self.lookup.get_vocabulary()

    def call(self, tokens):
        ids = self.lookup(tokens)
        return tf.where(tf.equal(ids, self.oov_id), self.lookup(word_signatures(tokens)), ids)

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "padding": self.padding}
