"""The slot-filling app's data (sentences, vocabularies, batches) and how a tagger's slot scores
become tags (argmax, or constrained Viterbi with `layers.ViterbiDecoder`)."""

from dataclasses import dataclass

import keras
import numpy as np

from layers import ConditionalRandomField, ViterbiDecoder
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
    decoder: ViterbiDecoder = None  # slot tags by constrained Viterbi; None: argmax per word
    crf: ConditionalRandomField = None  # with --slot-crf: the learned transition scores
    max_chars: int = 0  # with --char-features: the characters read per word

    def has_split(self, split):
        return self.examples.get(split) is not None

    @property
    def decoding_model(self):
        """`decoder` as a compiled model, (scores, mask) -> tag ids; made again if it changes."""
        if getattr(self, "_decoding_for", None) is not self.decoder:
            scores = keras.Input((None, len(self.vocabularies.tags)), name="scores")
            mask = keras.Input((None,), dtype="bool", name="mask")
            self._decoding_model = keras.Model([scores, mask], self.decoder(scores, mask=mask))
            self._decoding_for = self.decoder
        return self._decoding_model

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


def predict_examples(model, data, split):
    """(tags per example, intent per example) in the split's order."""
    examples = data.examples[split]
    if data.crf is not None:
        data.decoder.copy_scores(data.crf)  # the transition scores as trained so far
    tagger = model if data.decoder is None else DecodingTagger(model, data.decoding_model)
    rows = predictions_in_order(tagger, data.batches(split), len(examples))
    tags = [
        data.vocabularies.tags.decode(row["slot_ids"][: len(example.words)])
        if "slot_ids" in row
        else decode_best(row["slots"][: len(example.words)], data.vocabularies.tags)
        for row, example in zip(rows, examples)
    ]
    intents = [decode_best(row["intent"], data.vocabularies.intents) for row in rows]
    return tags, intents
