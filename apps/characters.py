"""--char-features, shared by the word-tagging apps: each word also read by its letters.

The tagger gets a second input, "chars" (batch, time, MAX_WORD_CHARS): each
word's `pipelines.text.character_ids`, which `layers.CharacterFeatures` turns
into a vector concatenated to the word's embedding (Ma & Hovy 2016). The saved
model computes the characters of the raw text's tokens itself (`CharacterIds`).
"""

import keras

from apps import parts, runner
from apps.parts import Parts
from layers import CharacterFeatures
from pipelines.text import ALPHABET_SIZE, CharacterIds

MAX_WORD_CHARS = 20  # characters read per word (ATIS' longest word has 16)
CHAR_EMBEDDING_DIM = 25
CHAR_WIDTH = 3  # characters each filter reads
CHARACTERS, WORD_FEATURES = "characters", "word_features"  # the layers' names


def add_argument(parser):
    parser.add_argument(
        "--char-features",
        type=runner.non_negative_int,
        default=0,
        metavar="FILTERS",
        help="also read each word by its letters: a convolution over character embeddings "
        f"({CHAR_WIDTH} characters wide, max-pooled over the word's first {MAX_WORD_CHARS}) with this "
        "many filters, beside the word embedding; reaches words the vocabulary never saw; 0: none "
        "(default: %(default)s)",
    )


def max_chars(args):
    """Characters per word the data carries: 0 without --char-features."""
    return MAX_WORD_CHARS if args.char_features else 0


def with_characters(words, embedded, filters):
    """(model inputs, word features): the embeddings alone, or with `filters` (--char-features)
    the embeddings and the character features of each word, from a second input "chars"."""
    if not filters:
        return words, embedded
    chars = keras.Input((None, MAX_WORD_CHARS), dtype="int32", name="chars")
    spelling = CharacterFeatures(filters, CHAR_WIDTH, CHAR_EMBEDDING_DIM, ALPHABET_SIZE, name=CHARACTERS)(chars)
    features = keras.layers.Concatenate(name=WORD_FEATURES)([embedded, spelling])
    return {"words": words, "chars": chars}, features


def tagger_inputs(ids, tokens, count):
    """What a saved model's tagger reads for `tokens` (their `ids`; their characters when `count`)."""
    if not count:
        return ids
    return {"words": ids, "chars": CharacterIds(count, name=parts.CHAR_IDS)(tokens)}


def max_chars_of(serving_model):
    """The characters per word a saved model reads: 0 for a model without character features."""
    chars = Parts(serving_model).optional(parts.CHAR_IDS)
    return chars.max_chars if chars is not None else 0
