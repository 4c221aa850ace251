"""The sentiment app's data: texts, their tokens and ids, batches, and the fitted n-gram classifier
(NBSVM or naive Bayes, `fitting.ngrams`) whose scores join the network's (--ngrams)."""

from dataclasses import dataclass

import keras
import numpy as np

from apps import parts
from apps.app import UserError
from apps.characters import MAX_WORD_CHARS
from fitting.ngrams import TooFewTexts, fit_blend, fit_naive_bayes, fit_nbsvm
from pipelines.classification import classification_dataset, tokenize_texts
from pipelines.text import ALPHABET_SIZE, CharacterIds, SentenceTokenizer, character_id_rows, ragged
from pipelines.vocab import Vocabulary

CHAR_NGRAMS_NBSVM = 5  # --char-ngrams' default with NBSVM: character 2..5-grams
MAX_CHAR_NGRAMS = 7  # (alphabet + 1) ** 7 < 2 ** 62, the n-gram keys' limit


@dataclass
class TextData:
    splits: dict  # split -> [TextExample]
    tokenizer: SentenceTokenizer
    words: Vocabulary
    labels: Vocabulary
    batch_size: int
    seed: int
    ngram_scorer: object = None  # an NgramScores layer fitted on the training split, or None
    char_ngram_scorer: object = None  # the same over the words' character n-grams (--char-ngrams), or None
    fusion: str = "late"  # how the network's and the n-gram classifier's scores combine (--fusion)

    def __post_init__(self):
        self._ids = {}
        self._tokens = {}
        self._ngram_scores = {}
        self.ngram_weights = {}  # with character n-grams: the weights of the word and character scores

    @property
    def model_inputs(self):
        # "naive_bayes": the n-gram scores' input, named when naive Bayes was the only n-gram classifier.
        return ("words", "naive_bayes") if self.ngram_scorer is not None else "words"

    def fit_ngram_classifier(self, max_n, classifier="nbsvm", char_max_n=0):
        """Fits the n-gram classifier (NBSVM or multinomial naive Bayes) on the training split;
        its training texts get scores of a classifier not fitted on them (cross-fitted, or
        naive Bayes' exact leave-one-out), the other splits the layer's, as a served model
        computes them. With `char_max_n`, a second NBSVM over the words' character
        2..char_max_n-grams; the two are stacked by weights fitted on their cross-fitted training
        scores (by cross-entropy, `fit_blend`), which scale their tables."""
        token_ids, label_ids = self.encoded("train")
        fit = fit_nbsvm if classifier == "nbsvm" else fit_naive_bayes
        if classifier == "nbsvm":
            print(f"fitting NBSVM on {len(token_ids)} training texts and on 5 folds of them ...", flush=True)
        try:
            self.ngram_scorer, left_out = fit(
                token_ids, label_ids, num_labels=len(self.labels), max_n=max_n, base=len(self.words),
                classes=list(range(self.labels.num_special, len(self.labels))),
            )  # fmt: skip
        except TooFewTexts as error:
            names = self.labels.decode(list(error.counts))
            raise UserError(
                f"--ngram-classifier nbsvm: class(es) {', '.join(names)} have fewer than two training texts "
                f"({', '.join(map(str, error.counts.values()))}), and NBSVM's cross-fitted training scores "
                "need two or more of each class: add texts, or use --ngram-classifier mnb or --ngrams 0"
            ) from None
        if char_max_n:
            print(f"fitting NBSVM on the character 2..{char_max_n}-grams of the words ...", flush=True)
            self.char_ngram_scorer, char_left_out = fit_nbsvm(
                character_id_rows(self.tokens("train"), MAX_WORD_CHARS), label_ids, num_labels=len(self.labels),
                classes=list(range(self.labels.num_special, len(self.labels))), max_n=char_max_n, min_n=2,
                base=ALPHABET_SIZE + 1, unit="chars", name="char_naive_bayes",
            )  # fmt: skip
            special = self.labels.num_special
            a, b = fit_blend(left_out[:, special:], char_left_out[:, special:], np.array(label_ids) - special)
            self.ngram_scorer.scale(a)
            self.char_ngram_scorer.scale(b)
            left_out = a * left_out + b * char_left_out
            self.ngram_weights = {"ngram_word_weight": a, "ngram_char_weight": b}
            print(f"n-gram scores: word n-grams × {a:.3f} + character n-grams × {b:.3f}")
        self._ngram_scores = {"train": left_out}

    def ngram_scores_of(self, split):
        """The n-gram classifier's class scores of a split's texts (texts, labels)."""
        if split not in self._ngram_scores:
            token_ids, _ = self.encoded(split)
            tokens = self.tokens(split)
            scores = np.zeros((len(token_ids), len(self.labels)), dtype="float32")
            for start in range(0, len(token_ids), 256):
                chunk = ragged(token_ids[start : start + 256]).to_tensor()
                part = self.ngram_scorer(chunk)
                if self.char_ngram_scorer is not None:
                    chars = character_id_rows(tokens[start : start + 256], MAX_WORD_CHARS)
                    part = part + self.char_ngram_scorer(ragged(chars).to_tensor())
                scores[start : start + len(chunk)] = keras.ops.convert_to_numpy(part)
            self._ngram_scores[split] = scores
        return self._ngram_scores[split]

    def serving_ngram_scores(self, ids, tokens):
        """In a saved model: the n-gram classifier's class scores from the text's word ids and
        tokens (their characters, with character n-grams)."""
        scores = self.ngram_scorer(ids)
        if self.char_ngram_scorer is None:
            return scores
        chars = CharacterIds(MAX_WORD_CHARS, name=parts.CHAR_IDS)(tokens)
        return keras.layers.Add(name="ngram_scores")([scores, self.char_ngram_scorer(chars)])

    def best_labels(self, scores):
        """The best-scoring real label (no special one) of each row of class scores (texts, labels)."""
        special = self.labels.num_special
        return self.labels.decode([int(i) + special for i in np.argmax(np.asarray(scores)[:, special:], axis=1)])

    def has_split(self, split):
        return bool(self.splits.get(split))

    def tokens(self, split):
        if split not in self._tokens:
            self._tokens[split] = tokenize_texts([e.text for e in self.splits[split]], self.tokenizer)
        return self._tokens[split]

    def encoded(self, split):
        if split not in self._ids:
            self._ids[split] = (
                [self.words.encode(t) for t in self.tokens(split)],
                [self.labels.id(e.label) for e in self.splits[split]],
            )
        return self._ids[split]

    def batches(self, split, shuffle=False):
        token_ids, label_ids = self.encoded(split)
        extra = {}
        if self.ngram_scorer is not None:
            extra["naive_bayes"] = list(self.ngram_scores_of(split).astype("float32"))
        return classification_dataset(
            token_ids, label_ids, self.batch_size, shuffle_seed=self.seed if shuffle else None, extra=extra
        )


def char_ngram_order(args, classifier):
    """The longest character n-gram of --char-ngrams: its default by classifier; refused with
    mnb, which has no character n-grams."""
    if args.char_ngrams is None:
        return CHAR_NGRAMS_NBSVM if classifier == "nbsvm" else 0
    if args.char_ngrams and classifier != "nbsvm":
        raise UserError(f"--char-ngrams {args.char_ngrams} needs --ngram-classifier nbsvm (or pass --char-ngrams 0)")
    if args.char_ngrams == 1 or args.char_ngrams > MAX_CHAR_NGRAMS:
        raise UserError(
            f"--char-ngrams {args.char_ngrams}: pass 2..{MAX_CHAR_NGRAMS} (character n-grams start at 2, and "
            f"longer ones do not fit the n-gram keys), or 0 for none"
        )  # fmt: skip
    return args.char_ngrams
