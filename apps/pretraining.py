"""Starting a text model's embedding and recurrent encoder from a trained text auto-encoder's
(Dai & Le 2015's sequence auto-encoder pretraining): `sentiment train --pretrained-encoder MODEL`.

Both models are built on `apps.text_backbone`, whose layers are named `embedding` and
`recurrent`. The embedding is copied row by row for the words both vocabularies hold (the
others keep their fresh initialisation); the recurrent stack is copied whole, and must have the
same shape: cell, units, layers, direction.
"""

from apps.app import UserError
from pipelines.vocab import Vocabulary

EMBEDDING, RECURRENT = "embedding", "recurrent"
_LOADED = {}  # location -> the auto-encoder: loaded once for all folds and trials


def pretrained(location, tracking_uri=None):
    if location not in _LOADED:
        from apps import saved

        model = saved.load_model(location, tracking_uri)
        names = {layer.name for layer in model.layers}
        if not {EMBEDDING, RECURRENT, "settings"} <= names:
            raise UserError(
                f"--pretrained-encoder {location}: not a text auto-encoder of the suite (it has no "
                f"{EMBEDDING}/{RECURRENT} layers and vocabulary); train one with python -m apps.text_autoencoder train"
            )
        _LOADED[location] = model
    return _LOADED[location]


def describe(layer):
    config = layer.get_config()
    direction = "bidirectional" if config["bidirectional"] else "one-way"
    return f"{config['num_layers']} {direction} {config['kind']} layer(s) of {config['units']} units"


def start_from(model, words, location, tracking_uri=None):
    """Copies the auto-encoder's embedding rows (by word) and recurrent weights into `model`,
    whose vocabulary is `words`; returns {"pretrained_words": the share of words found}."""
    source = pretrained(location, tracking_uri)
    source_words = Vocabulary.from_dict(source.get_layer("settings").values["words"])
    source_table = source.get_layer(EMBEDDING).embeddings.numpy()
    target = model.get_layer(EMBEDDING)
    table = target.embeddings.numpy()
    if table.shape[1] != source_table.shape[1]:
        raise UserError(
            f"--pretrained-encoder {location}: its word embeddings have {source_table.shape[1]} dimensions; "
            f"pass --embedding-dim {source_table.shape[1]}"
        )
    source_recurrent, recurrent = source.get_layer(RECURRENT), model.get_layer(RECURRENT)
    shapes = [w.shape for w in source_recurrent.get_weights()], [w.shape for w in recurrent.get_weights()]
    if shapes[0] != shapes[1]:
        raise UserError(
            f"--pretrained-encoder {location}: its encoder is {describe(source_recurrent)}, this model's "
            f"{describe(recurrent)}; pass the same --cell, --units, --layers and --bidirectional"
        )
    found = 0
    for index, token in enumerate(words.specials + words.tokens):
        if token in source_words or index == words.oov_id:
            table[index] = source_table[source_words.id(token)]
            found += token in source_words
    target.embeddings.assign(table.astype(target.embeddings.dtype))
    recurrent.set_weights(source_recurrent.get_weights())
    return {"pretrained_words": found / max(len(words.tokens), 1)}


# Dai & Le's SA-LSTM, in the app: the classifier's own encoder trained as an auto-encoder first ------
DECODER_WORDS = 10000  # the decoder's output words; rarer ones it spells as OOV (a full softmax costs)
DECODER_DROPOUT = 0.2
DECODER_EMBEDDING_DIM = 128  # the text auto-encoder's --target-embedding-dim default


def autoencoder_batches(batches, limit, oov_id, start_id, end_id):
    """({"words", "previous"}, target, weights) for a sequence auto-encoder from batches of
    {"words": padded ids}: the decoder reads START + words and writes words + END, words of id
    ≥ `limit` spelt as OOV (the encoder still reads them)."""
    import tensorflow as tf

    def pairs(batch):
        ids = tf.cast(batch["words"], tf.int32)
        spelt = tf.where(ids >= limit, oov_id, ids)
        lengths = tf.reduce_sum(tf.cast(ids > 0, tf.int32), axis=1)
        padded = tf.pad(spelt, [[0, 0], [0, 1]])
        target = padded + end_id * tf.one_hot(lengths, tf.shape(padded)[1], dtype=tf.int32)
        previous = tf.concat([tf.fill([tf.shape(ids)[0], 1], start_id), spelt], axis=1)
        return {"words": ids, "previous": previous}, target, tf.cast(target > 0, tf.float32)

    return batches.map(pairs)


def train_as_autoencoder(model, batches, vocabulary_size, oov_id, args, epochs, verbose=1):
    """Trains `model`'s `embedding` and `recurrent` layers (in place) as the encoder of a sequence
    auto-encoder (`apps.autoencoder`: a code of twice --units, a decoder of --cell) on `batches`
    of {"words"} for `epochs`; logs its curves (`autoencoder_loss`, `autoencoder_accuracy`) in
    the active MLflow run and returns the history. The embedding dropout between them, if any,
    stays in the encoder (a denoising input)."""
    from argparse import Namespace

    import keras
    import mlflow

    from apps import autoencoder

    recurrent = model.get_layer(RECURRENT)
    if not recurrent.return_sequences:
        raise UserError("--autoencoder-epochs: the encoder must return every step; pass --pooling mean or attention")
    limit = min(vocabulary_size, DECODER_WORDS)
    start_id, end_id = limit, limit + 1
    words = keras.Input((None,), dtype="int32", name="words")
    previous = keras.Input((None,), dtype="int32", name="previous")
    x = model.get_layer(EMBEDDING)(words)
    if any(layer.name == "embedding_dropout" for layer in model.layers):
        x = model.get_layer("embedding_dropout")(x)
    memory = recurrent(x)
    settings = Namespace(**{
        **vars(args), "code_size": 2 * args.units, "decoder_cell": None, "decoder_units": None,
        "code_every_step": True, "dropout": DECODER_DROPOUT,
    })  # fmt: skip
    steps = keras.layers.Embedding(limit + 2, DECODER_EMBEDDING_DIM, name="target_embedding")(previous)
    outputs = autoencoder.decode(memory, keras.ops.not_equal(words, 0), steps, settings)
    logits = keras.layers.Dense(limit + 2, dtype="float32", name="logits")(outputs)
    trainer = keras.Model({"words": words, "previous": previous}, logits, name="sequence_autoencoder")
    trainer.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=args.clipnorm if args.clipnorm > 0 else None),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=["sparse_categorical_accuracy"],
    )
    data = autoencoder_batches(batches, limit, oov_id, start_id, end_id)
    history = trainer.fit(data, epochs=epochs, verbose=verbose, shuffle=False)  # the batches are shuffled
    if mlflow.active_run() is not None:
        for epoch, (loss, accuracy) in enumerate(
            zip(history.history["loss"], history.history["sparse_categorical_accuracy"])
        ):
            mlflow.log_metrics({"autoencoder_loss": loss, "autoencoder_accuracy": accuracy}, step=epoch)
    return history
