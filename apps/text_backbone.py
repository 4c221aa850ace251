"""The text backbone the text apps share: word ids in, one feature vector per word (or per text) out.

    words -> [word dropout] -> embedding -> [character features] -> [dropout]
          -> [the app's extra word features] -> [context window] -> recurrent stack

Slot filling, sentiment and keywords build their models on it and add their own
heads (slot tags and intent, pooling and class scores, B/I/O tags). The layers
keep their names (`embedding`, `characters`, `context_window`, `recurrent`, ...),
so models saved before the backbone existed load and serve as they did.
"""

import keras

from apps import characters
from layers import ContextWindow, RecurrentStack, WordDropout


def text_backbone(
    words,
    args,
    vocabulary_size,
    char_features=0,
    word_dropout=0.0,
    oov_id=1,
    embedding_dropout=None,
    extra_features=None,
    context_window=None,
    dropout=0.0,
    return_sequences=True,
    output_units=None,
):
    """(model inputs, the stack's input, its output) for the word ids `words` (a `keras.Input`).

    `args` gives the embedding size (`embedding_dim`) and the recurrent stack (`cell`,
    `units`, `layers`, `bidirectional`, `recurrent_dropout`, `seed`). Optional steps, in
    order: `word_dropout` (the rate at which training words become `oov_id`), character
    features with `char_features` filters (a second input, "chars"), `embedding_dropout`
    (a rate; None: no layer), `extra_features(inputs, x) -> (inputs, x)` (e.g. the word
    statistics of keywords), `context_window` (None: no layer). `dropout`,
    `return_sequences` and `output_units` (a Jordan cell's output) go to the stack.
    """
    ids = words
    if word_dropout:
        ids = WordDropout(word_dropout, oov_id, seed=args.seed, name="word_dropout")(words)
    x = keras.layers.Embedding(vocabulary_size, args.embedding_dim, mask_zero=True, name="embedding")(ids)
    inputs, x = characters.with_characters(words, x, char_features)
    if embedding_dropout is not None:
        x = keras.layers.Dropout(embedding_dropout, name="embedding_dropout")(x)
    if extra_features is not None:
        inputs, x = extra_features(inputs, x)
    if context_window is not None:
        x = ContextWindow(context_window, name="context_window")(x)
    features = RecurrentStack(
        args.cell,
        args.units,
        num_layers=args.layers,
        bidirectional=args.bidirectional,
        dropout=dropout,
        recurrent_dropout=args.recurrent_dropout,
        return_sequences=return_sequences,
        output_units=output_units,
        name="recurrent",
    )(x)
    return inputs, x, features
