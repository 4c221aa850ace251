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
