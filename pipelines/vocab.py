"""Vocabularies of words and labels, with padding and out-of-vocabulary ids.

Ids follow `keras.layers.StringLookup`: with padding, 0 is the padding
(mask) token "" and 1 the OOV token; without, 0 is OOV. So the lookup layer
that a logged model carries gives the ids the training pipeline gave.
"""

import json
from collections import Counter
from pathlib import Path

import keras

PAD = ""
OOV = "[UNK]"


class Vocabulary:
    def __init__(self, tokens, padding=True):
        tokens = list(tokens)
        for reserved in (PAD, OOV):
            if reserved in tokens:
                raise ValueError(f"vocabulary tokens may not include the reserved token {reserved!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.tokens = tokens
        self.padding = padding
        self.specials = [PAD, OOV] if padding else [OOV]
        self._ids = {token: index for index, token in enumerate(self.specials + tokens)}

    @classmethod
    def build(cls, sequences, min_count=1, padding=True):
        """From an iterable of token sequences: the most frequent first, ties alphabetically."""
        counts = Counter(token for sequence in sequences for token in sequence)
        kept = [t for t, c in counts.items() if c >= min_count and t not in (PAD, OOV)]
        return cls(sorted(kept, key=lambda t: (-counts[t], t)), padding=padding)

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

    def id(self, token):
        return self._ids.get(token, self.oov_id)

    def encode(self, tokens):
        return [self.id(token) for token in tokens]

    def decode(self, ids):
        table = self.specials + self.tokens
        return [table[i] for i in ids]

    def lookup_layer(self, invert=False, name=None):
        """A `keras.layers.StringLookup` giving (or, inverted, reading) these ids."""
        return keras.layers.StringLookup(
            vocabulary=self.tokens,
            mask_token=PAD if self.padding else None,
            oov_token=OOV,
            num_oov_indices=1,
            invert=invert,
            name=name,
        )

    def to_dict(self):
        return {"tokens": self.tokens, "padding": self.padding}

    @classmethod
    def from_dict(cls, data):
        return cls(data["tokens"], padding=data["padding"])

    def save(self, path):
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path):
        return cls.from_dict(json.loads(Path(path).read_text()))
