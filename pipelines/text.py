"""Text pieces shared by the text apps: raw-sentence tokenization, label decoding, batching.

`SentenceTokenizer` and `LabelDecoder` are Keras layers so that a saved or
logged model carries them and predicts from raw text after reload. Like
Keras' own text preprocessing layers they run TensorFlow string ops
(tensorflow-text), which only the TensorFlow backend has; the recurrent
model layers in `layers/` are backend-independent.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from layers.base import PACKAGE
from layers.context import KEY_RANGE
from pipelines.vocab import PAD, Vocabulary, WordLookup, word_signatures  # noqa: F401 (re-exported)

# punctuation="drop": white space and punctuation that the slot-filling data sets never
# attach to a word separate tokens and vanish. "i'd", "st.", "r&b", "top-rated" stay whole.
DELIMITERS = r"[\s,!?;()]+"
# A final period attached to a word ("denver.") ends the sentence; "st. louis" keeps its own.
SENTENCE_END = r"(\w)\.\s*$"
# punctuation="split": each mark is a token of its own, as in the NLTK review corpora
# ("witty , seductive ."); apostrophes and hyphens stay inside words ("it's", "mid-'70s").
MARKS = r"\.\.\.|--|[.,!?;:\"()\[\]]"


@keras.saving.register_keras_serializable(package=PACKAGE)
class SentenceTokenizer(keras.layers.Layer):
    """Raw sentences (batch,) -> tokens (batch, max_length), padded with "".

    Normalizes (see `normalize`), then splits at white space, and at
    punctuation as `punctuation` says:

    - "drop": drops a sentence-final period, splits at `, ! ? ; ( )` (dropped)
      and drops tokens made only of periods. On the ATIS and SNIPS sentences
      this gives back exactly the data sets' own tokens.
    - "split": every mark of `. , ! ? ; : " ( ) [ ] -- ...` becomes a token of its
      own, as in the NLTK review corpora.

    Longer texts are cut to `max_length` tokens, keeping the first or the
    last ones (`keep`): the fixed width keeps a logged model's output one
    rectangular array whatever the batch.

    Args:
        max_length: Tokens per text in the output.
        lowercase: Unicode case folding (with NFKC normalization).
        fold_digits: Write every digit as 0, so that unseen numbers ("flight
            811") share the shape of seen ones ("flight 345"), as Mesnil et al.
            (2015) did for ATIS.
        punctuation: "drop" or "split", as above.
        keep: "first" or "last": which tokens of a longer text remain.
    """

    def __init__(self, max_length=64, lowercase=True, fold_digits=False, punctuation="drop", keep="first", **kwargs):
        super().__init__(**kwargs)
        if punctuation not in ("drop", "split"):
            raise ValueError(f"punctuation must be 'drop' or 'split', got {punctuation!r}")
        if keep not in ("first", "last"):
            raise ValueError(f"keep must be 'first' or 'last', got {keep!r}")
        self.keep = keep
        self.max_length = max_length
        self.lowercase = lowercase
        self.fold_digits = fold_digits
        self.punctuation = punctuation

    def normalize(self, text):
        """The normalization of words and sentences alike (any shape of string tensor)."""
        if self.lowercase:
            text = tf_text.case_fold_utf8(text)
        if self.fold_digits:
            text = tf.strings.regex_replace(text, "[0-9]", "0")
        return text

    def tokenize(self, text):
        """Ragged tokens, not cut to `max_length`."""
        text = tf.convert_to_tensor(text, dtype=tf.string)
        if text.shape.rank == 2:  # a (batch, 1) column, as a DataFrame gives it
            text = tf.squeeze(text, axis=-1)
        text = self.normalize(text)
        if self.punctuation == "split":
            return tf_text.regex_split(text, rf"\s+|{MARKS}", keep_delim_regex_pattern=MARKS)
        text = tf.strings.regex_replace(text, SENTENCE_END, r"\1")
        tokens = tf_text.regex_split(tf.strings.strip(text), DELIMITERS)
        # A period on its own ("(live) .") is punctuation; no data set has it as a word.
        return tf.ragged.boolean_mask(tokens, tf.logical_not(tf.strings.regex_full_match(tokens, r"\.+")))

    def cut(self, tokens):
        """Ragged tokens cut to `max_length`, keeping the first or last ones."""
        return tokens[:, : self.max_length] if self.keep == "first" else tokens[:, -self.max_length :]

    def call(self, text):
        return self.cut(self.tokenize(text)).to_tensor(default_value=PAD, shape=[None, self.max_length])

    def get_config(self):
        return {
            **super().get_config(),
            "max_length": self.max_length,
            "lowercase": self.lowercase,
            "fold_digits": self.fold_digits,
            "punctuation": self.punctuation,
            "keep": self.keep,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class LabelDecoder(keras.layers.Layer):
    """Scores over a vocabulary's ids (..., ids) -> the best label's string (...).

    Integer input (...) is taken as the ids themselves.

    The special ids (padding, OOV) are never chosen. Where `tokens` is given,
    its padding positions ("") decode to "".
    """

    def __init__(self, labels, num_special, **kwargs):
        super().__init__(**kwargs)
        self.labels = list(labels)
        self.num_special = num_special
        # Takes masked scores without a warning; the strings carry no mask ("" marks padding).
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, scores, tokens=None, mask=None):
        if scores.dtype.is_integer:  # ids already chosen (e.g. by a ViterbiDecoder)
            best = tf.cast(scores, "int64")
        else:
            best = tf.argmax(scores[..., self.num_special :], axis=-1) + self.num_special
        decoded = tf.gather(tf.constant(self.labels), best)
        if tokens is not None:
            decoded = tf.where(tf.equal(tokens, PAD), PAD, decoded)
        return decoded

    def get_config(self):
        return {**super().get_config(), "labels": self.labels, "num_special": self.num_special}


def signature_strings(sequences):
    """`word_signatures` of token sequences (lists of str), as lists of str."""
    if not sequences:
        return []
    signatures = word_signatures(tf.ragged.constant(sequences, dtype=tf.string, ragged_rank=1))
    return [[s.decode("utf-8") for s in row] for row in signatures.to_list()]


def encode_words(sequences, vocabulary, signatures=None):
    """Word ids of normalized token sequences (lists of str), as `vocabulary.lookup_layer()` gives them.

    `signatures`: the sequences' `signature_strings`, where the caller has them already.
    """
    sequences = [list(s) for s in sequences]
    if not vocabulary.signatures:
        return [vocabulary.encode(s) for s in sequences]
    if signatures is None:
        signatures = signature_strings(sequences)
    return [vocabulary.encode(w, s) for w, s in zip(sequences, signatures)]


# Character ids: a code point below 254 is itself + 1, any other character 255, padding 0.
ALPHABET_SIZE = 256


def character_ids(tokens, max_chars):
    """Each token's first `max_chars` characters as ids: tokens (...) -> int32 (..., max_chars).

    Code point + 1 for code points below 254 (ASCII and Latin-1 letters keep
    their own id), 255 for any other character, 0 after the token's end (and
    for the padding token ""). The ids `layers.CharacterFeatures` reads.
    """
    tokens = tf.convert_to_tensor(tokens)
    points = tf.strings.unicode_decode(tokens, "UTF-8", errors="replace")
    ids = tf.ragged.map_flat_values(lambda p: tf.where(p < ALPHABET_SIZE - 2, p + 1, ALPHABET_SIZE - 1), points)
    return ids[..., :max_chars].to_tensor(default_value=0, shape=[*tokens.shape.as_list(), max_chars])


def per_token_rows(sequences, compute):
    """`compute` (str tensor (n,) -> array (n, ...)) of every token of the token sequences (lists
    of str) in one call: one array per sequence."""
    sequences = [list(s) for s in sequences]
    if not sequences:
        return []
    lengths = [len(s) for s in sequences]
    flat = compute(tf.constant([w for s in sequences for w in s] or [""], dtype=tf.string)).numpy()
    return np.split(flat[: sum(lengths)], np.cumsum(lengths)[:-1])


def character_id_rows(sequences, max_chars):
    """`character_ids` of token sequences (lists of str): one int32 array (words, max_chars) each."""
    return per_token_rows(sequences, lambda tokens: character_ids(tokens, max_chars))


def token_keys(tokens):
    """A hash of each token (str tensor of any shape -> int32 in [0, KEY_RANGE), the range
    `layers.WordStatistics` reads keys in): tells apart words the vocabulary maps to one OOV id
    (`layers.WordStatistics` counts them by it)."""
    return tf.cast(tf.strings.to_hash_bucket_fast(tf.convert_to_tensor(tokens), KEY_RANGE), "int32")


def token_key_rows(sequences):
    """`token_keys` of token sequences (lists of str): one int32 list per sequence (a list, as
    `example_batches` takes a sequence of ids)."""
    return [row.tolist() for row in per_token_rows(sequences, token_keys)]


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenKeys(keras.layers.Layer):
    """Tokens (batch, time) -> their `token_keys` (batch, time), in a saved model."""

    def call(self, tokens):
        return token_keys(tokens)

    def compute_output_shape(self, input_shape):
        return input_shape


def batch_inputs(batch, keys):
    """The entries of a batch a model reads: `batch[keys]` for one key, a dict for a tuple of keys
    (a model with named inputs)."""
    if isinstance(keys, tuple):
        return {key: batch[key] for key in keys}
    return batch[keys]


def word_inputs(batch):
    """What a word tagger reads from a batch: the word ids, and their keys (`token_keys`) and
    characters where it has them."""
    names = tuple(name for name in ("words", "keys", "chars") if name in batch)
    return batch_inputs(batch, names if len(names) > 1 else "words")


@keras.saving.register_keras_serializable(package=PACKAGE)
class CharacterIds(keras.layers.Layer):
    """Tokens (batch, time) -> their `character_ids` (batch, time, max_chars), in a saved model."""

    def __init__(self, max_chars, **kwargs):
        super().__init__(**kwargs)
        self.max_chars = max_chars

    def call(self, tokens):
        return character_ids(tokens, self.max_chars)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.max_chars)

    def get_config(self):
        return {**super().get_config(), "max_chars": self.max_chars}


def bucket_edges(max_length):
    """Padded lengths of the length buckets, the last >= `max_length`: fine for short, coarse for long.

    Batches are padded to their bucket's edge, so a model sees few distinct
    shapes (few retraces, few XLA compilations).
    """
    edges = [8, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512]
    kept = [edge for edge in edges if edge < max_length]
    return kept + [edges[len(kept)] if len(kept) < len(edges) else int(max_length)]


def bucketed_batches(dataset, lengths, length_of, batch_size, shuffle_seed=None, cache=True, padded_shapes=None):
    """cache -> shuffle -> bucket by length (padding to the bucket's edge) -> prefetch.

    For dict elements whose sequence components are padded with zeros.
    `lengths` are the elements' sequence lengths (they fix the buckets and the
    number of batches), `length_of(element)` computes one inside the pipeline.
    `shuffle_seed=None` keeps the order within buckets (evaluation).
    `padded_shapes` fixes the padded shape of some components (as
    `Dataset.bucket_by_sequence_length` takes it); the others' unknown
    dimensions are padded to the bucket's edge.
    """
    lengths = np.asarray(lengths)
    edges = bucket_edges(int(lengths.max()) if lengths.size else 1)
    dataset = dataset.map(_dense_components)
    if cache:
        dataset = dataset.cache()
    if shuffle_seed is not None:
        size = dataset.cardinality()
        size = 10_000 if size < 0 else int(size)
        dataset = dataset.shuffle(size, seed=shuffle_seed, reshuffle_each_iteration=True)
    # A bucket holds lengths below its boundary and pads to boundary - 1 (the edge).
    boundaries = [edge + 1 for edge in edges]
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=length_of,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padded_shapes=padded_shapes,
        pad_to_bucket_boundary=True,
    )
    # Each bucket gives ceil(size / batch_size) batches; knowing the total lets
    # Keras show progress and end epochs without a "ran out of data" warning.
    sizes = np.bincount(np.searchsorted(boundaries, lengths, side="right"))
    batches = int(sum(-(-size // batch_size) for size in sizes))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(tf.data.AUTOTUNE)


def example_batches(columns, batch_size, shuffle_seed=None, length_key="words"):
    """Batches of examples given as columns, bucketed by the length of `length_key`.

    `columns` maps a name to one value per example: a list of ids (a
    sequence, padded with 0 in a batch), an array (steps, features) of
    floats or ids (padded with 0), a float vector of a fixed size, or an id (a label). Each batch also
    holds "index", every example's position, so predictions can be put back
    in order after bucketing. An empty sequence is read as one padding step.
    Sequences as long as the `length_key` sequence (e.g. a tag per word) are
    padded like it, to the bucket's edge; others (e.g. an utterance's few
    digits) to their own longest, so they carry no bucket-sized padding.
    """
    count = len(columns[length_key])
    elements = {"index": np.arange(count, dtype="int32")}
    key_lengths = [max(len(v), 1) for v in columns[length_key]]
    padded_shapes = {"index": []}
    for name, values in columns.items():
        if count and isinstance(values[0], np.ndarray) and values[0].ndim == 1:
            elements[name] = np.stack(values).astype("float32")  # a fixed-size vector per example
        elif count and isinstance(values[0], np.ndarray) and values[0].ndim == 2:
            dtype = "int32" if np.issubdtype(values[0].dtype, np.integer) else "float32"
            elements[name] = tf.RaggedTensor.from_row_lengths(
                np.concatenate(values).astype(dtype), [len(v) for v in values]
            )
        elif count and isinstance(values[0], (list, tuple)):
            elements[name] = ragged([list(v) if len(v) else [0] for v in values])
        else:
            elements[name] = np.asarray(values, dtype="int32")
        shape = list(elements[name].shape[1:])
        if shape and shape[0] is None:
            aligned = all(max(len(v), 1) == n for v, n in zip(values, key_lengths))
            shape[0] = None if aligned else max(max(len(v), 1) for v in values)
        padded_shapes[name] = shape
    return bucketed_batches(
        tf.data.Dataset.from_tensor_slices(elements),
        lengths=key_lengths,
        length_of=lambda element: tf.shape(element[length_key])[0],
        batch_size=batch_size,
        shuffle_seed=shuffle_seed,
        padded_shapes=padded_shapes,
    )


def _dense_components(element):
    """Slices of a ragged tensor are 1-D ragged values; batching wants plain tensors."""
    return {
        key: value.to_tensor() if isinstance(value, tf.RaggedTensor) else tf.convert_to_tensor(value)
        for key, value in element.items()
    }


def ragged(sequences, dtype="int32"):
    """A ragged tensor from a list of lists (empty lists allowed)."""
    lengths = [len(s) for s in sequences]
    flat = np.concatenate([np.asarray(s, dtype=dtype) for s in sequences]) if sequences else []
    return tf.RaggedTensor.from_row_lengths(np.asarray(flat, dtype=dtype), lengths)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClassProbabilities(keras.layers.Layer):
    """Softmax over class scores, carrying the class names (`labels`) in its config.

    The names travel with a saved model, so a prediction can say which class
    each probability is for.
    """

    def __init__(self, labels, **kwargs):
        super().__init__(**kwargs)
        self.labels = list(labels)

    def call(self, scores):
        return keras.ops.softmax(scores, axis=-1)

    def get_config(self):
        return {**super().get_config(), "labels": self.labels}


def predictions_in_order(model, batches, count, input_key=None):
    """Each example's outputs ({name: array}) in the order of the examples.

    `batches` carry each example's position as "index" (bucketing reorders them).
    `input_key`: the batch entry the model reads, or a tuple of entries (a
    model with named inputs); by default a word tagger's (`word_inputs`).
    """
    rows = [None] * count
    for batch in batches:
        inputs = word_inputs(batch) if input_key is None else batch_inputs(batch, input_key)
        outputs = model.predict_on_batch(inputs)
        if not isinstance(outputs, dict):
            outputs = {"output": outputs}
        outputs = {name: np.asarray(value) for name, value in outputs.items()}
        for row, index in enumerate(batch["index"].numpy()):
            rows[index] = {name: value[row] for name, value in outputs.items()}
    return rows
