"""The translation app's data (sentence pairs, their units and vocabularies, batches) and its
translator (generation from any trained model of the app, scored by sacreBLEU)."""

from dataclasses import dataclass

import numpy as np
import sacrebleu
import sacremoses
from sacremoses import MosesPunctNormalizer, MosesTokenizer

from apps.seq2seq import Seq2SeqGenerator, pair_batches
from pipelines.parallel import load_parallel
from pipelines.subwords import detokenize, learn_wordpieces, units_of
from pipelines.vocab import Vocabulary

BUCKETS = [8, 12, 16, 20, 25, 31, 40, 52]
TRANSLATE_BATCH = 128


@dataclass
class TranslationData:
    corpus: object  # pipelines.parallel.ParallelCorpus
    unit: str  # "words" or "wordpiece"
    pieces: dict  # side ("source", "target") -> WordPiece vocabulary (wordpiece only)
    units: dict  # split -> (source units, target units), lists of lists of str
    source_words: Vocabulary
    target_words: Vocabulary  # with START and END
    max_length: int
    batch_size: int
    seed: int
    beam_width: int = 1
    alpha: float = 0.0
    valid_beam_width: int = 1

    @classmethod
    def build(cls, args):
        corpus = load_parallel(args.dataset, args.source, args.target, args.data_dir)
        train = corpus.pairs["train"]
        pieces = {}
        if args.unit == "wordpiece":
            for index, side in enumerate(("source", "target")):
                pieces[side] = learn_wordpieces([pair[index] for pair in train], args.vocabulary_size)
        units = {}
        for split, pairs in corpus.pairs.items():
            units[split] = tuple(
                [row[: args.max_length] for row in units_of([p[i] for p in pairs], args.unit, pieces.get(side))]
                for i, side in enumerate(("source", "target"))
            )
        if args.unit == "wordpiece":  # every piece the tokenizer may give has an id
            source_words, target_words = Vocabulary(pieces["source"]), Vocabulary(pieces["target"], bounds=True)
        else:
            source_words = Vocabulary.build(units["train"][0], args.min_word_count)
            target_words = Vocabulary.build(units["train"][1], args.min_word_count, bounds=True)
        return cls(
            corpus, args.unit, pieces, units, source_words, target_words, args.max_length, args.batch_size,
            args.seed, args.beam_width, args.length_alpha, args.valid_beam_width,
        )  # fmt: skip

    def has_split(self, split):
        return bool(self.corpus.pairs.get(split))

    def vocabularies(self):
        return {"source_units": self.source_words, "target_units": self.target_words}

    def source_ids(self, split):
        return [self.source_words.encode(row) for row in self.units[split][0]]

    def batches(self, split, shuffle=False):
        """({"words", "previous"}, targets + END, weights) batches, bucketed by target length."""
        targets = [self.target_words.encode(row) for row in self.units[split][1]]
        words = self.target_words
        return pair_batches(self.source_ids(split), targets, words.start_id, words.end_id, self.batch_size, BUCKETS,
                            self.seed if shuffle else None)  # fmt: skip

    def references(self, split):
        return [pair[1] for pair in self.corpus.pairs[split]]


class Translator:
    """Source id rows -> translations (target units and detokenized text), with any trained
    model of the app; padding, OOV and START are never generated."""

    def __init__(self, model, target_words, beam_width=1, alpha=0.0, batch_size=TRANSLATE_BATCH):
        self.generator = Seq2SeqGenerator(model)
        self.target_words = target_words
        self.beam_width, self.alpha, self.batch_size = beam_width, alpha, batch_size
        self.banned = [i for i in (target_words.pad_id, target_words.oov_id, target_words.start_id) if i is not None]

    def units(self, id_rows, record=None):
        """The target units of each source id row (END removed), in order; `record` (greedy, a
        list) receives the attention weights of each step, batch by batch in input order."""
        order = np.argsort([len(r) for r in id_rows], kind="stable") if record is None else np.arange(len(id_rows))
        found = [None] * len(id_rows)
        end = self.target_words.end_id
        for first in range(0, len(order), self.batch_size):
            chosen = order[first : first + self.batch_size]
            sources = [id_rows[i] or [self.target_words.oov_id] for i in chosen]
            budget = 2 * max(len(s) for s in sources) + 10
            hypotheses = self.generator.generate(
                sources, self.target_words.start_id, end, budget, self.beam_width, self.alpha, record=record,
                banned=self.banned,
            )  # fmt: skip
            for index, hypothesis in zip(chosen, hypotheses):
                found[index] = self.target_words.decode([t for t in hypothesis.tokens if t != end])
        return found

    def translate(self, id_rows):
        return [detokenize(units) for units in self.units(id_rows)]


def translation_metrics(hypotheses, references, language=None):
    """sacreBLEU's BLEU and chrF (fractions) of detokenized hypotheses against raw references;
    with the target `language`, also `bleu_tok`: BLEU on lower-cased Moses-tokenized text."""
    return scored(hypotheses, references, language)[0]


def scored(hypotheses, references, language=None):
    """(translation_metrics' scores, {name: how it was computed}): sacreBLEU's signatures
    (tokenizer, casing, smoothing, version) and how `bleu_tok`'s text was prepared."""
    bleu, chrf = sacrebleu.BLEU(), sacrebleu.CHRF()
    scores = {
        "bleu": bleu.corpus_score(hypotheses, [references]).score / 100,
        "chrf": chrf.corpus_score(hypotheses, [references]).score / 100,
    }
    named = {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())}
    if language:
        scores["bleu_tok"] = tokenized_bleu(hypotheses, references, language)
        named["bleu_tok"] = (
            f"sacremoses {sacremoses.__version__} normalize + tokenize -a + lower-case, then BLEU tok:none"
        )
    return scores, named


def moses_lowercased(texts, language):
    """The WMT16/17 multimodal task's preprocessing (Moses: normalize punctuation, tokenize with
    aggressive hyphen splitting, lower-case), so that scores compare with the papers'."""
    normalizer, tokenizer = MosesPunctNormalizer(language), MosesTokenizer(language)
    return [
        tokenizer.tokenize(normalizer.normalize(t), aggressive_dash_splits=True, return_str=True, escape=False).lower()
        for t in texts
    ]


def tokenized_bleu(hypotheses, references, language):
    """BLEU (fraction) of Moses-tokenized, lower-cased text, the tokens taken as they are."""
    hypotheses, references = moses_lowercased(hypotheses, language), moses_lowercased(references, language)
    return sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none", force=True).score / 100
