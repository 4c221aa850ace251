"""The encoder-decoder every seq2seq app builds (parsing now; auto-encoders and translation next),
its flags, its training pairs, and generation from it.

    words -> [word dropout] -> embedding -> RecurrentStack (encoder)        -> memory
                                       FinalOutputs -> Bridge               -> the decoder's initial states
    previous -> target embedding [+ NextSourceStep] -> AttentionDecoder -> Dense -> logits

The training model reads {"words": source ids, "previous": START + target ids} and gives the
logits of the targets + END (teacher forcing). `Seq2SeqGenerator` builds generation from the
trained layers (keras-io's `lstm_seq2seq` builds its inference model the same way): the encoder
once, then the decoder one token at a time under `layers.generation`'s greedy or beam search.
"""

import argparse

import keras
import numpy as np
from keras import ops

from apps import characters, cli
from apps.app import App
from layers import CELL_KINDS, RecurrentStack, WordDropout
from layers.base import PACKAGE
from layers.generation import beam_search, greedy_search
from layers.seq2seq import SCORES, AttentionDecoder, Bridge, FinalOutputs, NextSourceStep

SOURCE, CHARS, PREVIOUS = "words", "chars", "previous"  # the training model's inputs (chars: --char-features)
# The training model's layers, by name, that generation reuses.
SOURCE_EMBEDDING, ENCODER, FINAL, BRIDGE = "source_embedding", "encoder", "final_outputs", "bridge"
TARGET_EMBEDDING, NEXT_SOURCE, DECODER, LOGITS = "target_embedding", "next_source_step", "decoder", "logits"


class TokenSequenceApp(App):
    """What the apps that write token sequences share (parsing, the text auto-encoder,
    translation): the data's `batches(split, shuffle)` give (inputs, next tokens, weights); the
    loss is the next token's cross-entropy; `data.vocabularies()` ({name: Vocabulary}) are saved
    as the run's assets, NAME.json each."""

    def fit_dataset(self, data, split):
        return data.batches(split, shuffle=split == "train")

    def compile_arguments(self, args, data, model):
        smoothing = getattr(args, "label_smoothing", 0.0)
        if smoothing:
            loss = SmoothedCrossentropy(smoothing)
        else:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return {"loss": loss, "weighted_metrics": []}

    def save_assets(self, data, folder):
        folder.mkdir(parents=True, exist_ok=True)
        for name, vocabulary in data.vocabularies().items():
            vocabulary.save(folder / f"{name}.json")


@keras.saving.register_keras_serializable(package=PACKAGE)
class SmoothedCrossentropy(keras.losses.Loss):
    """The next token's cross-entropy against label-smoothed targets (Szegedy et al. 2016), from
    logits and integer ids (Keras' sparse cross-entropy has no smoothing):

        q_k = (1 - ε) [k = y] + ε / K,    loss = -Σ_k q_k log p_k = (1 - ε)(-log p_y) + ε · mean_k(-log p_k)

    A model trained on it is less sure of its first choice, which a beam then weighs against
    the others' continuations (used against over-confident NMT by Vaswani et al. 2017).

    Args:
        smoothing: ε, the probability mass spread uniformly over the K classes.
    """

    def __init__(self, smoothing=0.1, name="smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = smoothing

    def call(self, y_true, y_pred):
        log_p = ops.log_softmax(y_pred, axis=-1)
        ids = ops.expand_dims(ops.cast(y_true, "int32"), -1)
        true_log_p = ops.squeeze(ops.take_along_axis(log_p, ids, axis=-1), -1)
        return -(1.0 - self.smoothing) * true_log_p - self.smoothing * ops.mean(log_p, axis=-1)

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}


def pair_batches(sources, targets, start_id, end_id, batch_size, buckets, shuffle_seed=None):
    """({"words": source ids, "previous": START + target ids}, target ids + END, weights) batches
    of id lists, bucketed by target length (`buckets`: the boundaries), shuffled when a seed is
    given; the number of batches is known, so Keras shows progress from the first epoch."""
    import tensorflow as tf

    row = tf.TensorSpec((None,), tf.int32)
    data = tf.data.Dataset.from_generator(
        lambda: ((s, [start_id, *t], [*t, end_id]) for s, t in zip(sources, targets)),
        output_signature=(row, row, row),
    ).cache()
    if shuffle_seed is not None:
        data = data.shuffle(len(sources), seed=shuffle_seed, reshuffle_each_iteration=True)
    data = data.bucket_by_sequence_length(
        lambda s, p, t: tf.shape(p)[0], bucket_boundaries=buckets, bucket_batch_sizes=[batch_size] * (len(buckets) + 1)
    )

    def named(s, p, t):
        return {SOURCE: s, PREVIOUS: p}, t, tf.cast(tf.not_equal(t, 0), "float32")

    sizes = np.bincount(np.searchsorted(buckets, [len(t) + 1 for t in targets], side="right"))
    count = int(sum(-(-size // batch_size) for size in sizes))
    return data.map(named).apply(tf.data.experimental.assert_cardinality(count)).prefetch(tf.data.AUTOTUNE)


def add_arguments(parser, character_features=True):
    """The seq2seq flags, beside the runner's (--cell, --units, --layers, --bidirectional, --dropout
    describe the encoder and, with --decoder-cell, the decoder); `character_features`: also
    --char-features (the source read as words)."""
    parser.add_argument(
        "--attention",
        choices=SCORES + ("none",),
        default="additive",
        help="how the decoder attends to the encoder's outputs: additive (Bahdanau) or multiplicative "
        "(Luong) scores; none: the lecture's fixed-vector encoder-decoder (default: %(default)s)",
    )
    parser.add_argument(
        "--input-feeding",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="feed the previous attentional vector to the next decoder step (Luong et al. 2015); "
        "without it the decoder runs as one fused Keras layer (default: %(default)s)",
    )
    parser.add_argument(
        "--decoder-cell",
        choices=CELL_KINDS,
        default=None,
        help="the decoder's cell kind (default: --cell)",
    )
    parser.add_argument(
        "--decoder-units", type=cli.positive_int, default=None, help="the decoder's size (default: twice --units)"
    )
    parser.add_argument(
        "--embedding-dim", type=cli.positive_int, default=128, help="source word embedding size (default: %(default)s)"
    )
    parser.add_argument(
        "--target-embedding-dim",
        type=cli.positive_int,
        default=64,
        help="embedding size of the output symbols (default: %(default)s)",
    )
    parser.add_argument(
        "--label-smoothing",
        type=cli.fraction,
        default=0.0,
        help="train on targets with this share of probability spread over all symbols (Szegedy et "
        "al. 2016), against an over-confident decoder; 0: plain cross-entropy (default: %(default)s)",
    )
    parser.add_argument(
        "--word-dropout",
        type=cli.fraction,
        default=0.1,
        help="replace each training source word by OOV with this probability, so that unseen words "
        "have a trained vector (default: %(default)s)",
    )
    if character_features:
        characters.add_argument(parser)


def add_generation_arguments(parser, beam_width=1, alpha=0.0):
    """--beam-width and --length-alpha (train, evaluate and predict)."""
    parser.add_argument(
        "--beam-width",
        type=cli.positive_int,
        default=beam_width,
        help="beam search width; 1: greedy (default: %(default)s)",
    )
    parser.add_argument(
        "--length-alpha",
        type=cli.non_negative_number,
        default=alpha,
        help="length normalisation of beam search: hypotheses are ranked by log-probability / "
        "length ** alpha (default: %(default)s)",
    )


def decoder_units(args):
    return args.decoder_units or 2 * args.units


def build_model(args, source_size, target_size, oov_id=1, advance_id=None, name="seq2seq"):
    """The training model (uncompiled); `advance_id`: the target token that consumes one source step,
    whose next source step the decoder then reads (`layers.seq2seq.NextSourceStep`)."""
    words = keras.Input((None,), dtype="int32", name=SOURCE)
    previous = keras.Input((None,), dtype="int32", name=PREVIOUS)
    ids = WordDropout(args.word_dropout, oov_id, seed=args.seed, name="word_dropout")(words)
    x = keras.layers.Embedding(source_size, args.embedding_dim, mask_zero=True, name=SOURCE_EMBEDDING)(ids)
    inputs, x = characters.with_characters(words, x, getattr(args, "char_features", 0))
    x = keras.layers.Dropout(args.dropout, name="embedding_dropout")(x)
    memory = RecurrentStack(
        args.cell,
        args.units,
        num_layers=args.layers,
        bidirectional=args.bidirectional,
        dropout=args.dropout,
        recurrent_dropout=args.recurrent_dropout,
        name=ENCODER,
    )(x)
    source_mask = ops.not_equal(words, 0)
    attention = None if args.attention == "none" else args.attention
    decoder = AttentionDecoder(
        args.decoder_cell or args.cell,
        decoder_units(args),
        attention=attention,
        input_feeding=args.input_feeding,
        dropout=args.dropout,
        seed=args.seed,
        name=DECODER,
    )
    summary = FinalOutputs(args.bidirectional, name=FINAL)(memory, source_mask)
    states = Bridge(decoder.state_sizes, name=BRIDGE)(summary)
    y = keras.layers.Embedding(target_size, args.target_embedding_dim, name=TARGET_EMBEDDING)(previous)
    if advance_id is not None:
        y = keras.layers.Concatenate(name="with_next_source")(
            [y, NextSourceStep(advance_id, name=NEXT_SOURCE)(previous, memory, source_mask)]
        )
    outputs = decoder(y, memory, states, memory_mask=source_mask)
    logits = keras.layers.Dense(target_size, dtype="float32", name=LOGITS)(outputs)
    inputs = {**inputs, PREVIOUS: previous} if isinstance(inputs, dict) else {SOURCE: words, PREVIOUS: previous}
    return keras.Model(inputs, logits, name=name)


def pad(sequences, width=None):
    width = width or max(1, max(len(s) for s in sequences))
    padded = np.zeros((len(sequences), width), dtype=np.int32)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = sequence
    return padded


def pad_characters(rows):
    """Character id arrays (words, characters), one per source, as one zero-padded array."""
    width = max(1, max(len(r) for r in rows))
    padded = np.zeros((len(rows), width, rows[0].shape[-1]), dtype=np.int32)
    for index, row in enumerate(rows):
        padded[index, : len(row)] = row
    return padded


class Seq2SeqGenerator:
    """Generation from a trained `build_model` model: `generate(sources, ...)`.

    Runs the model's own layers: the encoder once per batch, then `AttentionDecoder.step` with
    the target embedding, the next source step and the output layer, one token at a time, under
    greedy or beam search.
    """

    def __init__(self, model):
        self.model = model
        self.layer = {layer.name: layer for layer in model.layers}
        self.decoder = self.layer[DECODER]
        self.next_source = self.layer.get(NEXT_SOURCE)

    @property
    def reads_characters(self):
        """Whether the model also reads each word's characters (--char-features)."""
        return characters.CHARACTERS in self.layer

    def encode(self, words, chars=None):
        """(memory, source mask, the decoder's initial states) for padded source ids (and their
        character ids (batch, words, characters), if the model reads them)."""
        words = ops.convert_to_tensor(words, dtype="int32")
        mask = ops.not_equal(words, 0)
        x = self.layer[SOURCE_EMBEDDING](words)
        if self.reads_characters:
            spelling = self.layer[characters.CHARACTERS](ops.convert_to_tensor(chars, dtype="int32"))
            x = self.layer[characters.WORD_FEATURES]([x, spelling])
        memory = self.layer[ENCODER](x, mask=mask)
        states = self.layer[BRIDGE](self.layer[FINAL](memory, mask))
        return memory, mask, states

    def step_function(self, memory, mask, copies, record=None, banned=()):
        """`step(tokens, state)` for `layers.generation`, each source repeated `copies` times;
        `record`, a list, receives each step's attention weights; `banned` ids are never generated."""
        memory = ops.repeat(memory, copies, axis=0)
        mask = ops.repeat(mask, copies, axis=0)
        keys = self.decoder.memory_keys(memory)
        embedding, logits = self.layer[TARGET_EMBEDDING], self.layer[LOGITS]
        allowed = np.ones(logits.units, dtype=bool)
        allowed[list(banned)] = False
        advance = self.next_source.advance_id if self.next_source is not None else None

        def step(tokens, state):
            tokens = ops.convert_to_tensor(tokens, dtype="int32")
            x = embedding(tokens)
            new_state = {}
            if advance is not None:
                consumed = state["consumed"] + (np.asarray(tokens) == advance)
                x = ops.concatenate([x, NextSourceStep.at(ops.convert_to_tensor(consumed), memory, mask)], axis=-1)
                new_state["consumed"] = consumed
            states = [state[f"state_{i}"] for i in range(len(self.decoder.state_sizes))]
            output, weights, states, feed = self.decoder.step(x, states, state["feed"], memory, keys, mask)
            if record is not None and weights is not None:
                record.append(ops.convert_to_numpy(weights))
            scores = logits(output)
            if banned:  # the distribution over the allowed ids: renormalized without the banned
                scores = ops.where(allowed, scores, ops.full_like(scores, -np.inf))
            new_state.update({f"state_{i}": ops.convert_to_numpy(s) for i, s in enumerate(states)})
            new_state["feed"] = ops.convert_to_numpy(feed)
            return ops.convert_to_numpy(ops.log_softmax(scores, axis=-1)), new_state

        return step

    def initial_state(self, states, batch_size):
        state = {f"state_{i}": ops.convert_to_numpy(s) for i, s in enumerate(states)}
        state["feed"] = ops.convert_to_numpy(self.decoder.initial_feed(batch_size))
        if self.next_source is not None:
            state["consumed"] = np.zeros(batch_size, dtype=np.int32)
        return state

    def generate(
        self,
        sources,
        start_id,
        end_id,
        max_length,
        beam_width=1,
        alpha=0.0,
        constraint=None,
        record=None,
        chars=None,
        banned=(),
    ):
        """The best `Hypothesis` for each source (lists of ids; `chars`, with --char-features: an
        array (words, characters) per source); `record` (a list, greedy only) receives the
        attention weights (batch, source steps) of every step; `banned` ids (padding, OOV) are
        never generated."""
        memory, mask, states = self.encode(pad(sources), pad_characters(chars) if chars is not None else None)
        state = self.initial_state(states, len(sources))
        if beam_width == 1:
            step = self.step_function(memory, mask, 1, record, banned)
            return greedy_search(step, state, len(sources), start_id, end_id, max_length, constraint)
        step = self.step_function(memory, mask, beam_width, banned=banned)
        found = beam_search(
            step, state, len(sources), start_id, end_id, max_length, beam_width, alpha, constraint
        )  # fmt: skip
        return [hypotheses[0] for hypotheses in found]
