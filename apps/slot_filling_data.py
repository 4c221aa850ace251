"""The slot-filling app's data (sentences, vocabularies, batches) and how a tagger's slot scores
become tags (argmax, or constrained Viterbi with `layers.ViterbiDecoder`, which a tagger keeps in
its `model_state`)."""

from dataclasses import dataclass

import keras
import numpy as np

from apps.app import model_state
from pipelines.slots import SlotVocabularies, slot_dataset
from pipelines.text import SentenceTokenizer, predictions_in_order


@dataclass
class SlotData:
    examples: dict  # split -> [SlotExample] (None when the split is unavailable)
    tokenizer: SentenceTokenizer  # its normalization applies to training words too
    vocabularies: SlotVocabularies
    batch_size: int
    seed: int
    word_dropout: float = 0.0
    max_chars: int = 0  # with --char-features: the characters read per word

    def has_split(self, split):
        return self.examples.get(split) is not None

    def batches(self, split, shuffle=False):
        return slot_dataset(
            self.examples[split],
            self.vocabularies,
            self.tokenizer,
            self.batch_size,
            shuffle_seed=self.seed if shuffle else None,
            max_chars=self.max_chars,
        )


def decode_best(scores, vocabulary):
    """Best non-special label per position: padding and OOV are never predicted."""
    special = vocabulary.num_special
    best = np.argmax(scores[..., special:], axis=-1) + special
    return vocabulary.decode(best) if best.ndim else vocabulary.decode([best])[0]


class DecodingTagger:
    """A tagger whose slot scores go through a decoder: `predict_on_batch` gives "slot_ids"."""

    def __init__(self, tagger, decoding_model):
        self.tagger = tagger
        self.decoding_model = decoding_model

    def predict_on_batch(self, inputs):
        outputs = self.tagger.predict_on_batch(inputs)
        words = inputs["words"] if isinstance(inputs, dict) else inputs
        slot_ids = self.decoding_model.predict_on_batch([outputs["slots"], np.not_equal(words, 0)])
        return {"slot_ids": slot_ids, "intent": outputs["intent"]}


def decoding_model(state, tags):
    """The tagger's decoder (`state.decoder`) as a model, (scores, mask) -> tag ids; made once."""
    if getattr(state, "decoding_model", None) is None:
        scores = keras.Input((None, tags), name="scores")
        mask = keras.Input((None,), dtype="bool", name="mask")
        state.decoding_model = keras.Model([scores, mask], state.decoder(scores, mask=mask))
    return state.decoding_model


def predict_examples(model, data, split):
    """(tags per example, intent per example) in the split's order; the slot tags by the tagger's
    decoder (its `model_state`: `decoder`, and `crf` with --slot-crf), else argmax per word."""
    examples = data.examples[split]
    state = model_state(model)
    decoder, crf = getattr(state, "decoder", None), getattr(state, "crf", None)
    if crf is not None:
        decoder.copy_scores(crf)  # the transition scores as trained so far
    tagger = model if decoder is None else DecodingTagger(model, decoding_model(state, len(data.vocabularies.tags)))
    rows = predictions_in_order(tagger, data.batches(split), len(examples))
    tags = [
        data.vocabularies.tags.decode(row["slot_ids"][: len(example.words)])
        if "slot_ids" in row
        else decode_best(row["slots"][: len(example.words)], data.vocabularies.tags)
        for row, example in zip(rows, examples)
    ]
    intents = [decode_best(row["intent"], data.vocabularies.intents) for row in rows]
    return tags, intents
