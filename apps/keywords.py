"""Key term extraction: a recurrent tagger marks keyphrases in scientific abstracts.

    python -m apps.keywords train --dataset inspec
    python -m apps.keywords predict --model runs:/RUN_ID/model paper.txt
    python -m apps.keywords predict --model runs:/RUN_ID/model "Cooperative three-player quantum games ..."

The document is a word sequence; a (bidirectional) recurrent tagger gives
each word B, I or O (Begin, Inside, Outside a keyphrase), trained on the gold
keyphrases' occurrences. The candidates are the tagged spans, de-duplicated on
their stemmed form, ranked by the model's confidence; with --ranking fitted
(the default) the 40 most confident are re-ranked by a logistic regression,
fitted on the validation split after training, over the confidence of the
best occurrence, the sum over occurrences, the phrase's length, its first
occurrence, whether a more confident candidate contains it or lies inside it,
and the pairwise products of these; during training, the validation metrics
that early stopping reads rank each half of the validation split by a ranking
fitted on the other half. Evaluation as in
the keyphrase literature: the top k against all gold keyphrases, Porter-
stemmed, exact match (F1@5, F1@10, P@10, R@10), beside a TF-IDF baseline
scored on the same documents. Split: Inspec's own (Hulth 2003: 1000/500/500
abstracts), where the same metrics are also scored against the uncontrolled
keyphrases alone (uncontrolled_*), the references of the published Inspec
results; other data sets a seeded 50/25/25 shuffle. --members N trains N
taggers (child runs) and averages their tag probabilities into one model.
"""

import argparse
import json
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps import characters, parts, runner
from apps.app import model_state
from apps.keywords_data import KeyphraseData
from apps.parts import Parts
from apps.text_backbone import text_backbone
from layers import AveragedProbabilities, WordStatistics
from pipelines.classification import tokenize_texts
from fitting.phrase_ranking import cross_fitted_rankings, fit_phrase_ranking
from pipelines.keyphrases import (
    reference_keyphrases,
    score_rankings,
    RANKING_FEATURES,
    TAGS,
    PhraseRanking,
    TfIdfBaseline,
    bio_tags,
    load_keyphrase_dataset,
    ranked_keyphrases,
    split_documents,
)
from pipelines.sources import DataFormatError
from pipelines.text import (
    ClassProbabilities,
    SentenceTokenizer,
    TokenKeys,
    predictions_in_order,
    word_inputs,
)
from pipelines.vocab import Vocabulary


class Keywords(runner.App):
    name = "keywords"
    description = __doc__
    datasets = ("inspec",)
    dataset_help = "inspec, or liaad:PATH.zip for any data set in the LIAAD layout (NAME/docsutf8, NAME/keys)"
    monitor = "val_f1_at_10"
    supports_members = True
    curve_metrics = ("val_f1_at_5", "val_precision_at_10", "val_recall_at_10", "val_uncontrolled_f1_at_10")
    defaults = {
        "cell": "lstm", "bidirectional": True, "layers": 2, "units": 128, "dropout": 0.5, "epochs": 30, "patience": 5,
    }  # fmt: skip
    # Older runs ranked by confidence, without word statistics or word dropout.
    legacy_arguments = {
        "keys": "all",
        "word_statistics": False,
        "ranking": "confidence",
        "word_dropout": 0.0,
        "char_features": 0,
    }
    data_arguments = runner.App.data_arguments + (
        "max_length", "min_word_count", "char_features", "ranking", "keys", "word_statistics",
    )  # fmt: skip

    @property
    def search_space(self):
        return {
            **super().search_space,
            "embedding_dim": {"choice": [100, 200, 300]},
            "context_window": {"choice": [1, 3, 5]},
            "word_dropout": {"choice": [0.0, 0.1, 0.2]},
        }

    def add_arguments(self, parser):
        parser.add_argument(
            "--embedding-dim", type=runner.positive_int, default=200, help="word embedding size (default: %(default)s)"
        )
        parser.add_argument(
            "--context-window",
            type=runner.odd_positive_int,
            default=3,
            help="odd number of words each step sees (default: %(default)s)",
        )
        parser.add_argument(
            "--min-word-count",
            type=runner.positive_int,
            default=1,
            help="rarer training words become OOV (default: %(default)s)",
        )
        parser.add_argument(
            "--max-length", type=runner.positive_int, default=512, help="words read per document (default: %(default)s)"
        )
        parser.add_argument(
            "--word-statistics", action=argparse.BooleanOptionalAction, default=True,
            help="give each word, beside its embedding, how often its stem occurs in the document, "
            "where it first occurs, and its inverse document frequency in the training abstracts "
            "(KEA's features, which a tagger cannot count) (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--word-dropout", type=runner.fraction, default=0.1,
            help="replace each training word by the OOV word with this probability, so that the "
            "tagger learns to read a word its vocabulary lacks (on Inspec, one in a third of the test "
            "keyphrases) from its context and statistics; 0: off (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--ranking", choices=("fitted", "confidence"), default="fitted",
            help="how candidates are ranked: confidence, the probability that the tagger marks the "
            "phrase's best occurrence exactly; fitted, the 40 most confident re-ranked by a logistic "
            "regression fitted on the validation split after training, over that confidence, its sum "
            "over the phrase's occurrences, the phrase's length, where it first occurs, whether a more "
            "confident candidate contains it or lies inside it, and the products of these "
            "(default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--keys", choices=("all", "uncontrolled"), default="all",
            help="the keyphrases the tagger learns to mark and the ranking is fitted to: all of the "
            "key file's, or (inspec) Hulth's uncontrolled ones alone, the references of the published "
            "Inspec results; the metrics are scored against both either way (default: %(default)s)",
        )  # fmt: skip
        characters.add_argument(parser)

    def add_predict_arguments(self, parser):
        parser.add_argument(
            "--top-k",
            type=runner.positive_int,
            default=10,
            help="key terms to print per document (default: %(default)s)",
        )

    # Data --------------------------------------------------------------------------------
    def load_data(self, args):
        dataset = load_keyphrase_dataset(args.dataset, args.data_dir)
        splits = split_documents(dataset.documents, seed=0)
        small = [name for name, documents in splits.items() if not documents]
        if small:
            raise DataFormatError(
                f"{args.dataset}: {len(dataset.documents)} usable documents leave the {' and '.join(small)} "
                f"split(s) empty (half trains, a quarter validates, a quarter tests): at least 4 are needed"
            )
        tokenizer = SentenceTokenizer(args.max_length, punctuation="split", name=parts.TOKENIZER)
        tokens = {s: tokenize_texts([d.text for d in docs], tokenizer) for s, docs in splits.items()}
        gold, uncontrolled = {}, {}
        for s, docs in splits.items():
            gold[s], uncontrolled[s] = reference_keyphrases(docs, tokenizer)
        keys = args.keys
        if keys == "uncontrolled" and any(refs is None for refs in uncontrolled.values()):
            raise runner.UserError(
                f"--keys uncontrolled: {args.dataset} does not tell uncontrolled keyphrases apart "
                "(inspec does); use --keys all"
            )
        # TF-IDF's document frequencies come from every document's text (no labels): all splits.
        all_tokens = [t for split_tokens in tokens.values() for t in split_tokens]
        data = KeyphraseData(
            splits, tokens, gold, uncontrolled, tokenizer,
            words=Vocabulary.build(tokens["train"], args.min_word_count),
            tags=Vocabulary(TAGS),
            tfidf=TfIdfBaseline(all_tokens),
            batch_size=args.batch_size, seed=args.seed, skipped=dict(dataset.skipped), keys=keys,
            max_chars=characters.max_chars(args),
            token_keys=args.word_statistics,
            fitted_ranking=args.ranking == "fitted",
        )  # fmt: skip
        print(
            f"{dataset.name}: " + ", ".join(f"{s} {len(d)}" for s, d in splits.items()) + " documents; "
            f"{len(data.words.tokens)} words; "
            f"{np.mean([len(g) for g in gold['train']]):.1f} gold keyphrases per document"
            + (f" ({np.mean([len(g) for g in data.uncontrolled['test']]):.1f} uncontrolled in the test split)"
               if data.uncontrolled.get("test") else "")
        )  # fmt: skip
        unlabelled = sum(not bio_tags(t, g)[1] for t, g in zip(tokens["train"], data.labels["train"]))
        if unlabelled:
            data.skipped["training documents where no gold keyphrase occurs"] = unlabelled
        if unlabelled == len(tokens["train"]):
            raise DataFormatError(
                f"{args.dataset}: in none of the {unlabelled} training documents does one of its keyphrases "
                f"occur (after tokenization, --max-length {args.max_length}), so there is nothing to learn: "
                f"are the key files those of these documents?"
            )
        from apps import tracking  # MLflow: imported by the commands that track, not by predict

        tracking.log_skipped(data.skipped, words=3)
        return data

    def fit_dataset(self, data, split):
        def pairs(batch):
            weights = tf.cast(tf.not_equal(batch["words"], 0), "float32")
            return word_inputs(batch), batch["tags"], weights

        return data.batches(split, shuffle=split == "train", labelled_only=split == "train").map(pairs)

    def save_assets(self, data, folder):
        folder.mkdir(parents=True, exist_ok=True)
        data.words.save(folder / "words.json")
        (folder / "split.json").write_text(json.dumps({s: [d.doc_id for d in docs] for s, docs in data.splits.items()}))

    # Model -------------------------------------------------------------------------------
    def build_model(self, args, data):
        words = keras.Input((None,), dtype="int32", name="words")

        def with_statistics(inputs, x):  # --word-statistics, read from the words before any dropout
            keys = keras.Input((None,), dtype="int32", name="keys")
            statistics = WordStatistics(len(data.words), name="word_statistics")
            x = keras.layers.Concatenate(name="with_statistics")([x, statistics([words, keys])])
            statistics.set_tables(*data.statistics_tables)
            return with_keys(inputs, words, keys), x

        inputs, _, x = text_backbone(
            words, args, len(data.words), char_features=args.char_features, word_dropout=args.word_dropout,
            oov_id=data.words.oov_id, embedding_dropout=args.dropout,
            extra_features=with_statistics if data.token_keys else None, context_window=args.context_window,
        )  # fmt: skip
        x = keras.layers.Dropout(args.dropout, name="output_dropout")(x)
        scores = keras.layers.Dense(len(data.tags), dtype="float32", name="tags")(x)
        return keras.Model(inputs, scores, name=parts.TAGGER)

    def average_members(self, members, data):
        """--members N: the taggers' mean tag probabilities, as logits (so the rest reads the
        ensemble as it reads one tagger)."""
        inputs = keras.tree.map_structure(
            lambda spec: keras.Input(batch_shape=spec.shape, dtype=spec.dtype, name=spec.name), members[0].input
        )  # fmt: skip
        scores = AveragedProbabilities(name="averaged_probabilities")([member(inputs) for member in members])
        return keras.Model(inputs, scores, name="tagger_ensemble")

    def compile_arguments(self, args, data, model):
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}

    # Metrics -----------------------------------------------------------------------------
    def tag_probabilities(self, model, data, split):
        """Per document, its words' (P(B), P(I), P(O)) (words, 3)."""
        rows = predictions_in_order(model, data.batches(split), len(data.tokens[split]))
        special = data.tags.num_special
        documents = []
        for row, tokens in zip(rows, data.tokens[split]):
            scores = row["output"][: len(tokens), special:]
            probabilities = np.exp(scores - scores.max(axis=-1, keepdims=True))
            documents.append(probabilities / probabilities.sum(axis=-1, keepdims=True))
        return documents

    def rankings(self, model, data, split):
        """Each document's candidates, best first: [(phrase, score), ...]."""
        return [
            ranked_keyphrases(tokens, probabilities, ranking_of(model))
            for tokens, probabilities in zip(data.tokens[split], self.tag_probabilities(model, data, split))
        ]  # fmt: skip

    def after_training(self, model, data):
        """With --ranking fitted: fits the phrase ranking on the validation split (the trained
        tagger's probabilities there), used from then on and saved with the model."""
        if not data.fitted_ranking or not data.has_split("valid"):
            return {}
        probabilities = self.tag_probabilities(model, data, "valid")
        try:
            ranking = fit_phrase_ranking(data.tokens["valid"], probabilities, data.labels["valid"])
        except ValueError as error:  # e.g. no gold keyphrase among the validation candidates
            print(f"warning: --ranking fitted: {error}; ranking by confidence instead")
            return {}
        # The weights of the (standardized) features themselves; their products' are in reports/.
        model_state(model).ranking = ranking
        weights = dict(zip(RANKING_FEATURES, ranking["weights"]), intercept=ranking["intercept"])
        print("phrase ranking fitted on the validation split: " + ", ".join(
            f"{name} {value:.3f}" for name, value in weights.items()
        ) + " (and pairwise products: reports/phrase_ranking.json)")  # fmt: skip
        return {f"ranking_{name}": value for name, value in weights.items()}

    def evaluate(self, model, data, split):
        if data.fitted_ranking and ranking_of(model) is None and split == "valid" and len(data.tokens[split]) > 1:
            # Each epoch, for early stopping: the ranking the model will use, not yet fitted. (On the
            # confidence ranking it picked epochs whose tagger is sure of itself but ranks worse
            # once re-ranked.)
            probabilities = self.tag_probabilities(model, data, split)
            rankings = cross_fitted_rankings(data.tokens[split], probabilities, data.labels[split])
        else:
            rankings = self.rankings(model, data, split)
        return score_rankings(rankings, data.gold[split], data.uncontrolled[split])

    def baseline_metrics(self, data, split):
        rankings = [data.tfidf.rank(tokens) for tokens in data.tokens[split]]
        metrics = score_rankings(rankings, data.gold[split], data.uncontrolled[split])
        return {f"tfidf_{k}": v for k, v in metrics.items()}

    def reports(self, model, data, split):
        rankings = self.rankings(model, data, split)
        lines = []
        for document, ranking, gold in list(zip(data.splits[split], rankings, data.gold[split]))[:50]:
            lines.append(f"document {document.doc_id}")
            lines.append("  predicted: " + "; ".join(f"{p} ({s:.2f})" for p, s in ranking[:10]))
            lines.append("  gold:      " + "; ".join(" ".join(g) for g in gold))
        reports = {f"keyphrases_{split}.txt": "\n".join(lines) + "\n"}
        fitted = ranking_of(model)
        if fitted is not None:
            reports["phrase_ranking.json"] = json.dumps(fitted, indent=1)
        return reports

    # Serving -----------------------------------------------------------------------------
    def serving_model(self, model, data, args):
        """Raw documents -> per word (P(B), P(I), P(O)); rows past the text's words are padding."""
        text = keras.Input(shape=(), dtype="string", name="text")
        tokens = data.tokenizer(text)
        ids = data.words.lookup_layer(name=parts.WORD_IDS)(tokens)
        inputs = characters.tagger_inputs(ids, tokens, data.max_chars)
        if data.token_keys:
            inputs = with_keys(inputs, ids, TokenKeys(name=parts.TOKEN_KEYS)(tokens))
        scores = model(inputs)[..., data.tags.num_special :]
        probabilities = ClassProbabilities(list(TAGS), name=parts.PROBABILITIES)(scores)
        ranked = PhraseRanking(ranking_of(model), name=parts.PHRASE_RANKING)(probabilities)
        return keras.Model({"text": text}, ranked, name="keywords")

    def model_metadata(self, serving_model):
        return {"tags": list(TAGS), "output": "per word of the tokenized text: P(B), P(I), P(O)"}

    def evaluate_saved(self, serving_model, args):
        dataset = load_keyphrase_dataset(args.dataset, args.data_dir)
        documents = split_documents(dataset.documents, seed=0)[args.split]
        rankings = self.rank_texts(serving_model, [d.text for d in documents])
        return score_rankings(rankings, *reference_keyphrases(documents, Parts(serving_model).tokenizer))

    @staticmethod
    def rank_texts(serving_model, texts, batch_size=32):
        found = Parts(serving_model)
        tokenizer = found.tokenizer
        ranking_layer = found.optional(parts.PHRASE_RANKING)
        ranking = ranking_layer.coefficients if ranking_layer is not None else None
        rankings = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            probabilities = serving_model.predict_on_batch({"text": tf.constant(chunk)})
            for tokens, row in zip(tokenize_texts(chunk, tokenizer), probabilities):
                rankings.append(ranked_keyphrases(tokens, row[: len(tokens)], ranking))
        return rankings

    def read_inputs(self, inputs):
        return [_text_or_file(item) for item in inputs]

    def predict(self, serving_model, inputs, args):
        results = []
        for text, ranking in zip(inputs, self.rank_texts(serving_model, inputs)):
            top = ranking[: args.top_k]
            results.append({"text": text, "keyphrases": [{"phrase": p, "score": float(s)} for p, s in top]})
        return results

    def show(self, record, args):
        text = " ".join(record["text"].split())
        print(text if len(text) < 80 else text[:77] + "...")
        for keyphrase in record["keyphrases"]:
            print(f"  {keyphrase['score']:.3f}  {keyphrase['phrase']}")


def _text_or_file(item):
    """The text of `item`: the file's content when it names a file, else itself."""
    try:
        is_file = Path(item).is_file()
    except (OSError, ValueError):  # a text too long to be a path, a NUL character
        is_file = False
    if not is_file:
        return item
    try:
        return Path(item).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise runner.UserError(f"{item}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except OSError as error:
        raise runner.UserError(f"{item}: cannot read it ({error.strerror})") from None


def ranking_of(model):
    """The phrase ranking fitted for `model` after training (`fit_phrase_ranking`'s result), or
    None: before it is fitted, or with --ranking confidence."""
    return getattr(model_state(model), "ranking", None)


def with_keys(inputs, words, keys):
    """The tagger's inputs (the word ids alone, or a dict with their characters) and the words'
    keys (`pipelines.text.token_keys`): a dict with "keys"."""
    return {**(inputs if isinstance(inputs, dict) else {"words": words}), "keys": keys}


APP = Keywords()

if __name__ == "__main__":
    sys.exit(runner.main(APP))
