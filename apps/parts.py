"""The named parts of the models the apps build and log, in one place.

A serving model carries its preprocessing and decoding as layers (the tokenizer, the vocabulary
lookups, the decoders, the fitted ranking and n-gram tables). The apps name those layers with
these constants when they build a model, and reach them through `Parts` when they load one:
`Parts(model).tokenizer`, never a layer-name string of their own.
"""

from apps.app import UserError

TOKENIZER = "tokenizer"  # raw text -> tokens (pipelines.text.SentenceTokenizer)
WORD_IDS = "word_ids"  # tokens -> word ids (StringLookup, or WordLookup with signatures)
CHAR_IDS = "char_ids"  # tokens -> character ids (--char-features, --char-ngrams)
TOKEN_KEYS = "token_keys"  # tokens -> hash keys (keywords' --word-statistics)
PROBABILITIES = "probabilities"  # class probabilities that carry their labels
SLOT_TAGS = "slot_tags"  # slot scores -> tag strings (LabelDecoder)
INTENT_LABEL = "intent_label"  # intent scores -> intent string
SLOT_DECODER = "slot_decoder"  # constrained Viterbi (ViterbiDecoder)
TAGGER = "tagger"  # slot filling's and keywords' training model, inside the serving model
CLASSIFIER = "classifier"  # sentiment's training model, inside the serving model
PHRASE_RANKING = "phrase_ranking"  # keywords' fitted ranking (PhraseRanking)
SETTINGS = "settings"  # speech's feature settings (layers.Metadata)
# Inside sentiment's classifier: the network's class scores, the weight of the n-gram classifier's
# (its name from when that was naive Bayes alone; models saved since carry it), attention pooling.
LABEL = "label"
NGRAM_WEIGHT = "naive_bayes_weight"
ATTENTION = "attention"
WORDS = "words"  # the word-id input of the text apps' training models


class Parts:
    """A model's parts by name: `Parts(model).tokenizer`. An optional part the model lacks
    (`Parts(model).optional(SLOT_DECODER)`) is None; a required one is a `UserError` that says
    the model was not made by this app."""

    def __init__(self, model):
        self.model = model
        self.layers = {layer.name: layer for layer in model.layers}

    def required(self, name):
        if name not in self.layers:
            raise UserError(f"the model {self.model.name!r} has no {name!r} part: pass a model that this app logged")
        return self.layers[name]

    def optional(self, name):
        return self.layers.get(name)

    @property
    def tokenizer(self):
        return self.required(TOKENIZER)

    @property
    def word_ids(self):
        return self.required(WORD_IDS)

    @property
    def probabilities(self):
        return self.required(PROBABILITIES)

    @property
    def settings(self):
        return self.required(SETTINGS)
