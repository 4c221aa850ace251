"""A minimal app (docs/writing-an-app.md): is the mean of a sequence of digits above 4.5?

    python -m tests.toy_app train --data-dir FOLDER          # FOLDER/digits.tsv: LABEL<TAB>DIGITS lines
    python -m tests.toy_app predict --model runs:/RUN_ID/model "1 9 9 4"

Everything else (flags, tracking, checkpoints, resume, --cv, tune, evaluate) is the runner's.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps import runner
from layers import RecurrentStack

LABELS = ("low", "high")


@dataclass
class DigitData:
    splits: dict  # split -> (labels, digit-id sequences)
    batch_size: int
    seed: int

    def has_split(self, split):
        return split in self.splits

    def padded(self, split):
        labels, sequences = self.splits[split]
        return np.array(labels), keras.utils.pad_sequences(sequences, padding="post")


def read_digits(path):
    """(labels, sequences) from LABEL<TAB>DIGITS lines; digit d has id d + 1 (0 pads)."""
    if not path.is_file():
        raise runner.UserError(f"{path}: no such file; pass --data-dir, the folder holding digits.tsv")
    labels, sequences = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        label, _, digits = line.partition("\t")
        if label not in LABELS or not digits.split() or not all(d.isdigit() and len(d) == 1 for d in digits.split()):
            raise runner.UserError(f"{path}, line {number}: expected low|high, a tab, digits separated by spaces")
        labels.append(LABELS.index(label))
        sequences.append([int(d) + 1 for d in digits.split()])
    return labels, sequences


def split_data(labels, sequences, seed, fold=None, folds=5):
    """A seeded shuffle cut into 5 parts: test, valid, train (or, with --cv, fold `fold` as test)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    parts = np.array_split(order, folds)
    test = fold or 0
    valid = (test + 1) % folds
    train = np.concatenate([p for i, p in enumerate(parts) if i not in (test, valid)])
    pick = lambda index: ([labels[i] for i in index], [sequences[i] for i in index])  # noqa: E731
    return {"train": pick(train), "valid": pick(parts[valid]), "test": pick(parts[test])}


class Toy(runner.App):
    name = "toy"
    description = __doc__
    datasets = ("digits",)
    monitor = "val_accuracy"
    supports_cv = True
    defaults = {"cell": "gru", "units": 16, "epochs": 3, "batch_size": 16, "learning_rate": 0.01}
    data_arguments = runner.App.data_arguments + ("fold", "cv")

    def load_data(self, args):
        labels, sequences = read_digits(Path(args.data_dir or ".") / "digits.tsv")
        splits = split_data(labels, sequences, args.seed, args.fold, args.cv or 5)
        return DigitData(splits, args.batch_size, args.seed)

    def fit_dataset(self, data, split):
        labels, padded = data.padded(split)
        dataset = tf.data.Dataset.from_tensor_slices((padded, labels))
        if split == "train":
            dataset = dataset.shuffle(len(labels), seed=data.seed)
        return dataset.batch(data.batch_size).prefetch(tf.data.AUTOTUNE)

    def build_model(self, args, data):
        digits = keras.Input((None,), dtype="int32", name="digits")
        x = keras.layers.Embedding(11, 8, mask_zero=True, name="embedding")(digits)
        x = RecurrentStack(
            args.cell, args.units, num_layers=args.layers, bidirectional=args.bidirectional,
            return_sequences=False, name="recurrent",
        )(x)  # fmt: skip
        return keras.Model(digits, keras.layers.Dense(len(LABELS), name="label")(x), name="classifier")

    def compile_arguments(self, args, data, model):
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}

    def evaluate(self, model, data, split):
        labels, padded = data.padded(split)
        scores = model.predict(padded, batch_size=256, verbose=0)
        return {"accuracy": float(np.mean(np.argmax(scores, axis=-1) == labels))}

    def serving_model(self, model, data, args):
        digits = keras.Input((None,), dtype="int32", name="digits")
        return keras.Model(digits, keras.layers.Softmax(name="probabilities")(model(digits)), name="toy")

    def evaluate_saved(self, serving_model, args):
        labels, sequences = read_digits(Path(args.data_dir or ".") / "digits.tsv")
        data = DigitData(split_data(labels, sequences, args.seed), batch_size=256, seed=args.seed)
        return self.evaluate(serving_model, data, args.split)

    def add_evaluate_arguments(self, parser):
        parser.add_argument(
            "--seed", type=runner.seed, default=0, help="the seed of the training's split (default: %(default)s)"
        )

    def predict(self, serving_model, inputs, args):
        sequences = []
        for text in inputs:
            if not text.split() or not all(d.isdigit() and len(d) == 1 for d in text.split()):
                raise runner.UserError(f"{text!r}: expected digits separated by spaces")
            sequences.append([int(d) + 1 for d in text.split()])
        probabilities = serving_model.predict(keras.utils.pad_sequences(sequences, padding="post"), verbose=0)
        return [
            {"text": text, "label": LABELS[int(np.argmax(row))], "probability": float(np.max(row))}
            for text, row in zip(inputs, probabilities)
        ]

    def show(self, record, args):
        print(f"{record['label']}  {record['probability']:.3f}  {record['text']}")


APP = Toy()

if __name__ == "__main__":
    sys.exit(runner.main(APP))
