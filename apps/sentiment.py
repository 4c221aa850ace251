"""Sentiment classification (many-to-one): a sequence of words in, one label out.

    python -m apps.sentiment train --dataset mr --cv 10
    python -m apps.sentiment train --dataset polarity --pooling attention
    python -m apps.sentiment predict --model runs:/RUN_ID/model --explain "a gorgeous, witty, seductive movie"

Words -> embedding -> recurrent stack -> pooling of the steps (the last state,
the masked mean, or attention, whose weights `predict --explain` shows) ->
class scores, plus (with --ngrams N) an n-gram classifier's scores over
the text's 1..N-grams (NBSVM or naive Bayes; with NBSVM also over the words'
character 2..5-grams, --char-ngrams), weighted by a blend fitted on the
validation split (--fusion late) or learned with the network (--fusion joint)
-> class probabilities. Data:
`mr` (Pang & Lee sentence polarity), `polarity` (Pang & Lee 2004 movie
reviews), `nltk:NAME`, `csv:PATH` (columns text,label), `folder:PATH` (one file
per class, one example a line). Without --cv a fixed, seeded, stratified
80/10/10 split; with --cv K, K folds.
"""

import sys

import keras
import numpy as np
import tensorflow as tf

from apps import parts, pretraining, runner
from apps.parts import Parts
from apps.sentiment_data import CHAR_NGRAMS_NBSVM, TextData, char_ngram_order
from apps.text_backbone import text_backbone
from fitting.ngrams import fit_blend
from layers import (
    POOLING_MODES,
    AttentionPooling,
    ScoreWeight,
)
from pipelines.classification import (
    classification_metrics,
    confusion_matrix,
    load_text_dataset,
    split_indices,
    tokenize_texts,
)
from pipelines.text import (
    ClassProbabilities,
    SentenceTokenizer,
    batch_inputs,
    predictions_in_order,
)
from pipelines.vocab import Vocabulary

# Tokens kept per text: MR sentences are short; full reviews average ~790 tokens.
MAX_LENGTH = {"mr": 80, "polarity": 800}
DEFAULT_MAX_LENGTH = 400


class Sentiment(runner.App):
    name = "sentiment"
    description = __doc__
    datasets = ("mr", "polarity")
    dataset_help = (
        "mr (sentence polarity), polarity (movie reviews), nltk:NAME (an NLTK categorized corpus), "
        "csv:PATH (columns text,label), folder:PATH (one file per class, one example a line)"
    )
    monitor = "val_accuracy"
    curve_metrics = ("val_macro_f1",)
    supports_cv = True
    defaults = {"cell": "lstm", "bidirectional": True, "units": 128, "dropout": 0.5, "epochs": 15, "patience": 4}
    # Older runs: the network alone, or joint fusion with naive Bayes; no character n-grams.
    legacy_arguments = {
        "fusion": "joint", "ngrams": 0, "ngram_classifier": "mnb", "char_ngrams": 0, "pretrained_encoder": None,
        "autoencoder_epochs": 0,
    }  # fmt: skip
    renamed_arguments = {"naive_bayes": "ngrams"}  # --ngrams was --naive-bayes (still accepted)
    data_arguments = runner.App.data_arguments + (
        "max_length", "keep", "min_word_count", "fold", "cv", "ngrams", "ngram_classifier", "char_ngrams",
    )  # fmt: skip

    @property
    def search_space(self):
        return {
            **super().search_space,
            "embedding_dim": {"choice": [100, 200, 300]},
            "pooling": {"choice": list(POOLING_MODES)},
        }

    def add_arguments(self, parser):
        parser.add_argument(
            "--embedding-dim", type=runner.positive_int, default=300, help="word embedding size (default: %(default)s)"
        )
        parser.add_argument(
            "--pooling", choices=POOLING_MODES, default="attention",
            help="from the steps to one vector: last state, masked mean, or attention (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--max-length", type=runner.positive_int,
            help=f"tokens read per text (default: {MAX_LENGTH} by data set, else {DEFAULT_MAX_LENGTH})",
        )  # fmt: skip
        parser.add_argument(
            "--keep", choices=("first", "last"), default="last",
            help="which tokens of a longer text are read; reviews end with their verdict (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--min-word-count",
            type=runner.positive_int,
            default=1,
            help="rarer training words become OOV (default: %(default)s)",
        )
        parser.add_argument(
            "--ngrams", "--naive-bayes", type=int, choices=(0, 1, 2, 3), default=2, metavar="N",
            help="add an n-gram classifier's scores over the text's 1..N-grams (each counted once, "
            "fitted on the training split; Wang & Manning 2012) to the network's class scores, weighted "
            "as --fusion says. 0: the network alone. --naive-bayes, its former name, is still accepted "
            "(default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--fusion", choices=("late", "joint"), default="late",
            help="how the network and the n-gram classifier of --ngrams combine: late, the network "
            "trained alone, then its scores and the n-gram classifier's added with two weights fitted on "
            "the validation split; joint, the network trained on top of the n-gram scores, their weight "
            "learned with it (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--ngram-classifier", choices=("nbsvm", "mnb"), default="nbsvm",
            help="the n-gram classifier of --ngrams: nbsvm, a linear SVM over the n-grams scaled by "
            "naive Bayes log-count ratios (C = 1, β = 0.25), or mnb, multinomial naive Bayes "
            "(default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--char-ngrams", type=runner.non_negative_int, metavar="N",
            help="with --ngram-classifier nbsvm, a second NBSVM over each word's character 2..N-grams "
            "(read between word-boundary marks, as scikit-learn's char_wb), stacked with the word "
            "n-grams by weights fitted on their cross-fitted training scores; reaches words the "
            f"training texts never held. 0: none (default: {CHAR_NGRAMS_NBSVM} with nbsvm, 0 with mnb)",
        )  # fmt: skip

        parser.add_argument(
            "--pretrained-encoder", metavar="MODEL",
            help="start the embedding and the recurrent encoder from a text auto-encoder's (python -m "
            "apps.text_autoencoder; a .keras file, a model folder or URI, same --embedding-dim, --cell, "
            "--units, --layers, --bidirectional): Dai & Le 2015's pretraining. Train the auto-encoder "
            "on no text of this data set's test split",
        )  # fmt: skip
        parser.add_argument(
            "--autoencoder-epochs", type=runner.non_negative_int, default=0, metavar="N",
            help="first train this network's embedding and encoder for N epochs as a sequence "
            "auto-encoder on this run's (this fold's) training texts, their labels unused (Dai & Le "
            "2015's SA-LSTM; after --pretrained-encoder, if both). 0: none (default: %(default)s)",
        )  # fmt: skip

    def add_predict_arguments(self, parser):
        parser.add_argument("--explain", action="store_true", help="show how much each word counted (attention models)")

    # Data --------------------------------------------------------------------------------
    def load_data(self, args):
        dataset = load_text_dataset(args.dataset, args.data_dir)
        print(dataset.summary())
        from apps import tracking  # MLflow: imported by the commands that track, not by predict

        tracking.log_skipped(dataset.skipped, words=None, echo=False)  # the summary says it
        indices = split_indices([e.label for e in dataset.examples], args.seed, args.fold, args.cv or 10)
        splits = {name: [dataset.examples[i] for i in index] for name, index in indices.items()}
        max_length = args.max_length or MAX_LENGTH.get(args.dataset, DEFAULT_MAX_LENGTH)
        tokenizer = SentenceTokenizer(max_length, punctuation="split", keep=args.keep, name=parts.TOKENIZER)
        train_tokens = tokenize_texts([e.text for e in splits["train"]], tokenizer)
        words = Vocabulary.build(train_tokens, args.min_word_count)
        labels = Vocabulary(dataset.labels, padding=False)
        print(
            "split: " + ", ".join(f"{name} {len(examples)}" for name, examples in splits.items())
            + f"; {len(words.tokens)} words; reading {max_length} tokens per text"
        )  # fmt: skip
        data = TextData(splits, tokenizer, words, labels, args.batch_size, args.seed, fusion=args.fusion)
        if args.ngrams:
            classifier = args.ngram_classifier
            data.fit_ngram_classifier(args.ngrams, classifier, char_ngram_order(args, classifier))
        return data

    def fit_dataset(self, data, split):
        inputs = data.model_inputs

        def pairs(batch):
            return batch_inputs(batch, inputs), batch["label"]

        return data.batches(split, shuffle=split == "train").map(pairs)

    def save_assets(self, data, folder):
        folder.mkdir(parents=True, exist_ok=True)
        data.words.save(folder / "words.json")
        data.labels.save(folder / "labels.json")

    # Model -------------------------------------------------------------------------------
    def build_model(self, args, data):
        words = keras.Input((None,), dtype="int32", name="words")
        _, _, recurrent = text_backbone(
            words, args, len(data.words), embedding_dropout=args.dropout, return_sequences=args.pooling != "last"
        )
        if args.pooling == "last":
            sentence = recurrent
        elif args.pooling == "mean":
            sentence = keras.layers.GlobalAveragePooling1D(name="mean")(recurrent)
        else:
            sentence, _ = AttentionPooling(name=parts.ATTENTION)(recurrent)
        sentence = keras.layers.Dropout(args.dropout, name="sentence_dropout")(sentence)
        scores = keras.layers.Dense(len(data.labels), dtype="float32", name=parts.LABEL)(sentence)
        if data.ngram_scorer is None:
            return keras.Model(words, scores, name=parts.CLASSIFIER)
        ngram_input = keras.Input((len(data.labels),), name="naive_bayes")
        if data.fusion == "late":
            # The network trains alone; `after_training` sets this weight (and scales the network's).
            weight = ScoreWeight(0.0, dtype="float32", trainable=False, name=parts.NGRAM_WEIGHT)
        else:
            # Start the n-gram scores at a unit spread; training sets how much they count.
            train_scores = data.ngram_scores_of("train")
            spread = float(np.std(train_scores - train_scores.mean(axis=1, keepdims=True))) or 1.0
            weight = ScoreWeight(1.0 / spread, dtype="float32", name=parts.NGRAM_WEIGHT)
        weighted = weight(ngram_input)
        scores = keras.layers.Add(dtype="float32", name="scores")([scores, weighted])
        return keras.Model({"words": words, "naive_bayes": ngram_input}, scores, name=parts.CLASSIFIER)

    def start_weights(self, model, args, data):
        """The embedding and encoder started from --pretrained-encoder's, then trained as an
        auto-encoder's for --autoencoder-epochs, when given."""
        if getattr(args, "pretrained_encoder", None):
            found = pretraining.start_from(model, data.words, args.pretrained_encoder, args.tracking_uri)
            print(f"encoder from {args.pretrained_encoder}: {100 * found['pretrained_words']:.1f} % of the words")
        if getattr(args, "autoencoder_epochs", 0):
            print(f"auto-encoder pretraining: {args.autoencoder_epochs} epoch(s) on the training texts")
            pretraining.train_as_autoencoder(
                model, data.batches("train", shuffle=True), len(data.words), data.words.oov_id, args,
                args.autoencoder_epochs,
            )  # fmt: skip

    def compile_arguments(self, args, data, model):
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}

    # Metrics -----------------------------------------------------------------------------
    def predicted_labels(self, model, data, split):
        rows = predictions_in_order(model, data.batches(split), len(data.splits[split]), data.model_inputs)
        return data.best_labels(np.stack([r["output"] for r in rows]))

    def evaluate(self, model, data, split):
        gold = [e.label for e in data.splits[split]]
        return classification_metrics(gold, self.predicted_labels(model, data, split), data.labels.tokens)

    def after_training(self, model, data):
        """Scores the network alone (`valid_network_*`, `test_network_*`) beside the n-gram
        classifier alone (`valid_nb_*`); with --fusion late, fits the weights of the network's and
        the n-gram classifier's scores on the validation split and sets them in the model (its
        `label` layer scaled, the n-gram weight assigned)."""
        if data.ngram_scorer is None:
            return {}
        special = data.labels.num_special
        label = Parts(model).required(parts.LABEL)
        network = keras.Model(model.input, label.output)
        network_scores = {}
        for split in ("valid", "test"):
            if data.has_split(split):
                rows = predictions_in_order(network, data.batches(split), len(data.splits[split]), data.model_inputs)
                network_scores[split] = np.stack([r["output"] for r in rows])
        metrics = {f"valid_{k}": v for k, v in self.baseline_metrics(data, "valid").items()}
        for split, scores in network_scores.items():
            scored = classification_metrics(
                [e.label for e in data.splits[split]], data.best_labels(scores), data.labels.tokens
            )
            metrics.update({f"{split}_network_{k}": v for k, v in scored.items()})
        if data.fusion == "late":
            gold = np.array(data.encoded("valid")[1]) - special
            a, b = fit_blend(network_scores["valid"][:, special:], data.ngram_scores_of("valid")[:, special:], gold)
            label.kernel.assign(label.kernel * a)
            label.bias.assign(label.bias * a)
            Parts(model).required(parts.NGRAM_WEIGHT).weight.assign(b)
            metrics.update(fusion_network_weight=a, fusion_ngram_weight=b)
            print(f"late fusion on the validation split: network × {a:.3f} + n-grams × {b:.3f}")
        metrics.update(data.ngram_weights)
        return metrics

    def baseline_metrics(self, data, split):
        """The n-gram classifier alone, when the model has one (nb_accuracy, nb_macro_f1)."""
        if data.ngram_scorer is None:
            return {}
        gold = [e.label for e in data.splits[split]]
        scored = classification_metrics(gold, data.best_labels(data.ngram_scores_of(split)), data.labels.tokens)
        return {f"nb_{k}": v for k, v in scored.items()}

    def reports(self, model, data, split):
        gold = [e.label for e in data.splits[split]]
        from apps import tracking

        predicted = self.predicted_labels(model, data, split)
        labels = data.labels.tokens
        matrix = confusion_matrix(gold, predicted, labels)
        lines = [f"{'label':20s} {'precision':>9s} {'recall':>9s} {'f1':>9s} {'support':>8s}"]
        for i, label in enumerate(labels):
            precision = matrix[i, i] / matrix[:, i].sum() if matrix[:, i].sum() else 0.0
            recall = matrix[i, i] / matrix[i].sum() if matrix[i].sum() else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            lines.append(f"{label:20s} {precision:9.4f} {recall:9.4f} {f1:9.4f} {matrix[i].sum():8d}")
        return {
            f"classification_report_{split}.txt": "\n".join(lines) + "\n",
            f"confusion_matrix_{split}.png": tracking.confusion_figure(matrix, labels, f"confusion matrix ({split})"),
        }

    # Serving -----------------------------------------------------------------------------
    def serving_model(self, model, data, args):
        """Raw texts -> class probabilities, in the order of `labels` (the output layer's config)."""
        text = keras.Input(shape=(), dtype="string", name="text")
        tokens = data.tokenizer(text)
        ids = data.words.lookup_layer(name=parts.WORD_IDS)(tokens)
        if data.ngram_scorer is not None:
            scores = model({"words": ids, "naive_bayes": data.serving_ngram_scores(ids, tokens)})
        else:
            scores = model(ids)
        probabilities = ClassProbabilities(data.labels.tokens, name=parts.PROBABILITIES)(
            scores[..., data.labels.num_special :]
        )
        return keras.Model({"text": text}, probabilities, name="sentiment")

    def model_metadata(self, serving_model):
        return {"labels": list(Parts(serving_model).probabilities.labels)}

    def evaluate_saved(self, serving_model, args):
        if args.split not in ("train", "valid", "test"):
            raise runner.UserError(f"unknown split {args.split}")
        dataset = load_text_dataset(args.dataset, args.data_dir)
        indices = split_indices([e.label for e in dataset.examples], args.seed, None)
        examples = [dataset.examples[i] for i in indices[args.split]]
        labels = Parts(serving_model).probabilities.labels
        probabilities = serving_model.predict({"text": np.array([e.text for e in examples], dtype=object)}, verbose=0)
        predicted = [labels[i] for i in np.argmax(probabilities, axis=-1)]
        return classification_metrics([e.label for e in examples], predicted, labels)

    def add_evaluate_arguments(self, parser):
        parser.add_argument(
            "--seed", type=runner.seed, default=0, help="the seed of the training's split (default: %(default)s)"
        )

    def predict(self, serving_model, inputs, args):
        labels = Parts(serving_model).probabilities.labels
        probabilities = serving_model.predict_on_batch({"text": tf.constant(inputs)})
        weights = self.attention_weights(serving_model, inputs) if args.explain else None
        results = []
        for row, text in enumerate(inputs):
            best = int(np.argmax(probabilities[row]))
            result = {
                "text": text,
                "label": labels[best],
                "probability": float(probabilities[row, best]),
                "probabilities": {label: float(p) for label, p in zip(labels, probabilities[row])},
            }
            if weights is not None:
                result["attention"] = weights[row]
            results.append(result)
        return results

    def show(self, record, args):
        print(f"{record['label']}  {record['probability']:.3f}  {record['text']}")
        for token, weight in sorted(record.get("attention", []), key=lambda pair: -pair[1])[:10]:
            print(f"    {weight:6.3f}  {'#' * int(round(40 * weight)):40s}  {token}")

    @staticmethod
    def attention_weights(serving_model, inputs):
        """[(token, weight), ...] per input, from the model's attention pooling."""
        found = Parts(serving_model)
        classifier = found.required(parts.CLASSIFIER)
        attention = Parts(classifier).optional(parts.ATTENTION)
        if attention is None:
            raise runner.UserError("--explain needs a model trained with --pooling attention")
        words = Parts(classifier).required(parts.WORDS).output  # the attention reads the words alone
        explainer = keras.Model(words, attention.output[1])
        tokens = found.tokenizer(tf.constant(inputs))
        weights = explainer.predict_on_batch(found.word_ids(tokens))
        return [
            [(t.decode("utf-8"), float(w)) for t, w in zip(row_tokens, row_weights) if t]
            for row_tokens, row_weights in zip(tokens.numpy(), weights)
        ]


APP = Sentiment()

if __name__ == "__main__":
    sys.exit(runner.main(APP))
