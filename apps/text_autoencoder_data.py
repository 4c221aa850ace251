"""The text auto-encoder's data: sentences by split, their tokens and ids, and batches."""

from dataclasses import dataclass

import numpy as np

from apps import autoencoder
from apps.seq2seq import SOURCE, pad, pair_batches
from pipelines.classification import tokenize_texts
from pipelines.reconstruction import reconstruction_metrics
from pipelines.sentences import load_sentences, split_of
from pipelines.text import SentenceTokenizer
from pipelines.vocab import Vocabulary

SPLITS = ("train", "valid", "test")
BUCKETS = [8, 12, 16, 20, 25, 31]
ENCODE_BATCH = 256
TARGET_EMBEDDING, LOGITS = "target_embedding", "logits"  # the decoder's layers that generation reuses


def sentence_tokenizer(max_length):
    """The tokenizer of the sentiment app (lower-cased, punctuation split off), so that the two
    apps' words are the same and a pretrained encoder's embedding maps word for word."""
    return SentenceTokenizer(max_length, punctuation="split", keep="first")


@dataclass
class SentenceData:
    sentences: dict  # split -> [Sentence]
    tokens: dict  # split -> [[str]]
    words: Vocabulary  # with START and END: the encoder's input and the decoder's output
    max_length: int
    batch_size: int
    seed: int

    @classmethod
    def build(cls, spec, data_dir, max_length, max_words, min_count, batch_size, seed, vocabulary=None):
        """From the sentences of `spec`; the vocabulary is built on the training split, or given
        (a saved model's)."""
        tokenizer = sentence_tokenizer(max_length)
        sentences = {split: [] for split in SPLITS}
        for sentence in load_sentences(spec, data_dir):
            sentences[split_of(sentence.text)].append(sentence)
        tokens = {}
        for split, found in sentences.items():
            tokens[split] = tokenize_texts([s.text for s in found], tokenizer)
            kept = [i for i, t in enumerate(tokens[split]) if t]  # punctuation-free empties are dropped
            sentences[split] = [found[i] for i in kept]
            tokens[split] = [tokens[split][i] for i in kept]
        words = vocabulary or Vocabulary.build(tokens["train"], min_count, bounds=True, max_size=max_words)
        return cls(sentences, tokens, words, max_length, batch_size, seed)

    def has_split(self, split):
        return bool(self.sentences.get(split))

    def vocabularies(self):
        return {"words": self.words}

    def ids(self, split):
        return [self.words.encode(t) for t in self.tokens[split]]

    def batches(self, split, shuffle=False):
        """({"words", "previous"}, words + END, weights) batches, bucketed by length."""
        ids = self.ids(split)
        return pair_batches(ids, ids, self.words.start_id, self.words.end_id, self.batch_size, BUCKETS,
                            self.seed if shuffle else None)  # fmt: skip


def reconstructor(model):
    return autoencoder.Reconstructor(model, SOURCE, TARGET_EMBEDDING, LOGITS)


def encode_ids(encoder, id_rows):
    """The codes of id rows, in order."""
    return autoencoder.codes(encoder, id_rows, pad, ENCODE_BATCH)


def reconstruct(reconstructor, words, id_rows, max_length):
    """The reconstructed tokens of each id row (greedy), in order."""
    order = np.argsort([len(r) for r in id_rows], kind="stable")
    found = [None] * len(id_rows)
    for start in range(0, len(order), ENCODE_BATCH):
        chosen = order[start : start + ENCODE_BATCH]
        rebuilt = reconstructor.reconstruct(
            pad([id_rows[i] for i in chosen]), words.start_id, words.end_id, max_length + 1
        )  # fmt: skip
        for index, ids in zip(chosen, rebuilt):
            found[index] = words.decode(ids)
    return found


def metrics_of(reconstructor, words, token_rows, max_length):
    """Reconstruction metrics of sentences (token lists); the reference is what the vocabulary
    can spell (OOV words as the OOV token), and the rebuilt sentences."""
    references = [words.decode(words.encode(t)) for t in token_rows]
    rebuilt = reconstruct(reconstructor, words, [words.encode(t) for t in token_rows], max_length)
    return reconstruction_metrics(references, rebuilt), references, rebuilt
