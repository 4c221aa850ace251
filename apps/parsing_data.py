"""The parsing app's data (trees, vocabularies, batches) and parsing with a trained seq2seq model:
constrained generation, the words put back, the trees scored with EVALB's semantics."""

import re
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from nltk import Tree

from apps.characters import MAX_WORD_CHARS
from apps.seq2seq import CHARS, PREVIOUS, SOURCE, Seq2SeqGenerator
from pipelines.parse_metrics import evalb
from pipelines.text import character_id_rows
from pipelines.trees import TreeConstraint, delinearize, linearize, max_symbols, one_line
from pipelines.vocab import Vocabulary

# Bucket boundaries by output length (symbols): batches of similar length pad little.
BUCKETS = [30, 45, 60, 80, 110, 160]


def normal_word(word):
    """How the encoder reads a word: lower case, every digit 0 ("1,214" -> "0,000")."""
    return re.sub(r"\d", "0", word.lower())


@dataclass
class ParseData:
    trees: dict  # split -> [nltk.Tree] (cleaned); None when the split is unavailable
    words: Vocabulary  # normalized source words (padding, OOV)
    symbols: Vocabulary  # output symbols with START and END
    batch_size: int
    seed: int
    beam_width: int = 1  # how evaluation decodes (--beam-width, --length-alpha)
    alpha: float = 0.0
    char_features: bool = False  # whether the model also reads each word's characters

    @classmethod
    def build(cls, trees, batch_size, seed, min_word_count=1, beam_width=1, alpha=0.0, char_features=False):
        train = trees["train"]
        words = Vocabulary.build(([normal_word(w) for w in t.leaves()] for t in train), min_count=min_word_count)
        symbols = Vocabulary.build((linearize(t) for t in train), bounds=True)
        return cls(trees, words, symbols, batch_size, seed, beam_width, alpha, bool(char_features))

    def has_split(self, split):
        return bool(self.trees.get(split))

    def vocabularies(self):
        return {"words": self.words, "symbols": self.symbols}

    def sources(self, split):
        return [self.encode_words(tree.leaves()) for tree in self.trees[split]]

    def encode_words(self, words):
        return self.words.encode([normal_word(w) for w in words])

    def batches(self, split, shuffle=False):
        """({"words", "previous"[, "chars"]}, targets + END, weights) batches, bucketed by output length."""
        sources = self.sources(split)
        targets = [self.symbols.encode(linearize(t)) for t in self.trees[split]]
        previous = [[self.symbols.start_id, *t] for t in targets]
        expected = [[*t, self.symbols.end_id] for t in targets]
        # Without character features, an empty (words, 0) array stands in for them.
        chars = character_id_rows([t.leaves() for t in self.trees[split]], MAX_WORD_CHARS if self.char_features else 0)
        row = tf.TensorSpec((None,), tf.int32)
        spelling = tf.TensorSpec((None, chars[0].shape[-1]), tf.int32)
        data = tf.data.Dataset.from_generator(
            lambda: zip(sources, previous, expected, chars), output_signature=(row, row, row, spelling)
        ).cache()
        if shuffle:
            data = data.shuffle(len(sources), seed=self.seed, reshuffle_each_iteration=True)
        data = data.bucket_by_sequence_length(
            lambda s, p, t, c: tf.shape(p)[0],
            bucket_boundaries=BUCKETS,
            bucket_batch_sizes=[self.batch_size] * (len(BUCKETS) + 1),
        )

        def pairs(s, p, t, c):
            inputs = {SOURCE: s, PREVIOUS: p, **({CHARS: c} if self.char_features else {})}
            return inputs, t, tf.cast(tf.not_equal(t, 0), "float32")

        return data.map(pairs).prefetch(tf.data.AUTOTUNE)


class Parser:
    """Sentences (lists of words) -> trees, with any trained model of the app: constrained
    generation guarantees one well-formed tree with one XX per word."""

    def __init__(self, model, words, symbols, beam_width=1, alpha=0.0, batch_size=64):
        self.generator = Seq2SeqGenerator(model)
        self.words, self.symbols = words, symbols
        self.beam_width, self.alpha, self.batch_size = beam_width, alpha, batch_size
        self.constraint = TreeConstraint(symbols.specials + symbols.tokens, symbols.end_id)

    def symbol_sequences(self, sentences, record=None, constrained=True):
        """The output symbols of each sentence (END removed); `record` collects attention weights."""
        results = []
        for first in range(0, len(sentences), self.batch_size):
            chunk = sentences[first : first + self.batch_size]
            sources = [self.words.encode([normal_word(w) for w in s]) for s in chunk]
            chars = character_id_rows(chunk, MAX_WORD_CHARS) if self.generator.reads_characters else None
            lengths = [len(s) for s in chunk]
            budget = max(max_symbols(n) for n in lengths)

            def allowed(item, prefix):
                return self.constraint.allowed(prefix, lengths[item], budget)

            found = self.generator.generate(
                sources, self.symbols.start_id, self.symbols.end_id, budget, self.beam_width, self.alpha,
                allowed if constrained else None, record, chars,
            )  # fmt: skip
            for hypothesis in found:
                ids = [i for i in hypothesis.tokens if i != self.symbols.end_id]
                results.append(self.symbols.decode(ids))
        return results

    def parse(self, sentences, tags=None, constrained=True):
        """(trees, symbol sequences); a malformed sequence (only without constraints) gives None."""
        sequences = self.symbol_sequences(sentences, constrained=constrained)
        trees = []
        for index, (words, symbols) in enumerate(zip(sentences, sequences)):
            try:
                trees.append(delinearize(symbols, words, tags[index] if tags else None))
            except ValueError:
                trees.append(None)
        return trees, sequences


def without_tags(tree):
    """A tree with its part-of-speech level removed (predict's trees: the tags are all XX)."""
    if isinstance(tree[0], str):
        return tree[0]
    return Tree(tree.label(), [without_tags(child) for child in tree])


def gold_and_test_lines(gold_trees, test_trees):
    """EVALB's lines: each tree on one line with a TOP bracket; a missing test tree is an empty
    line, which EVALB skips."""
    gold = [f"(TOP {one_line(t)})" for t in gold_trees]
    test = ["" if t is None else f"(TOP {one_line(t)})" for t in test_trees]
    return gold, test


def parse_metrics(gold_trees, test_trees):
    """The app's metrics (fractions) with EVALB's semantics and COLLINS.prm."""
    gold, test = gold_and_test_lines(gold_trees, test_trees)
    scores = evalb(gold, test)
    everything, short = scores["all"], scores["len<=40"]
    malformed = sum(t is None for t in test_trees)
    return {
        "f1": everything["f1"] / 100, "recall": everything["recall"] / 100,
        "precision": everything["precision"] / 100, "complete_match": everything["complete_match"] / 100,
        "f1_len40": short["f1"] / 100, "malformed": float(malformed),
        "malformed_fraction": malformed / max(1, len(test_trees)),
    }  # fmt: skip


def tagged(tree):
    """(words, tags) of a tree."""
    pairs = tree.pos()
    return [w for w, _ in pairs], [t for _, t in pairs]


def attention_matrix(record, item, steps, words):
    """The attention weights of batch item `item` over its `words`, one row per output step."""
    return np.stack([weights[item, :words] for weights in record[:steps]])
