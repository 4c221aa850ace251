"""Text classification data: NLTK categorized corpora, CSV files, one file per class.

Every source yields `TextExample(text, label)` with raw text, which the
app's tokenizer splits exactly as it will split the text of a prediction.

Sources (`--dataset`):
  mr            Pang & Lee 2005 sentence polarity (NLTK `sentence_polarity`)
  polarity      Pang & Lee 2004 polarity v2.0, 2000 full reviews (NLTK `movie_reviews`)
  nltk:NAME     any NLTK categorized corpus; labels are its categories. Examples are
                its files, or its sentences when it has one file per category
                (as `sentence_polarity` does)
  csv:PATH      a CSV file with columns `text` and `label`
  folder:PATH   a folder of text files, one per class (the label is the file's
                name without extension), one example per line
"""

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.nltk_corpora import nltk_corpus
from pipelines.sources import DataFormatError, DataNotFoundError

NAMED_CORPORA = {"mr": "sentence_polarity", "polarity": "movie_reviews"}


@dataclass(frozen=True)
class TextExample:
    text: str
    label: str


@dataclass
class TextDataset:
    name: str
    examples: list
    skipped: dict = field(default_factory=dict)  # reason -> count

    @property
    def labels(self):
        return sorted({e.label for e in self.examples})

    def summary(self):
        counts = Counter(e.label for e in self.examples)
        text = f"{self.name}: {len(self.examples)} examples, " + ", ".join(
            f"{label} {counts[label]}" for label in self.labels
        )
        if self.skipped:
            text += "; skipped " + ", ".join(f"{n} ({reason})" for reason, n in self.skipped.items())
        return text


def load_text_dataset(spec, data_dir=None):
    """The examples of `spec` (see the module's docstring)."""
    kind, _, argument = spec.partition(":")
    if spec in NAMED_CORPORA:
        return load_nltk(NAMED_CORPORA[spec], data_dir, name=spec)
    if kind == "nltk" and argument:
        return load_nltk(argument, data_dir)
    if kind == "csv" and argument:
        return load_csv(Path(argument))
    if kind == "folder" and argument:
        return load_folder(Path(argument))
    raise DataNotFoundError(
        f"--dataset {spec!r}: no such data set; use one of {', '.join(NAMED_CORPORA)}, nltk:NAME, csv:PATH, folder:PATH"
    )


# NLTK ---------------------------------------------------------------------------------------


def load_nltk(corpus, data_dir=None, name=None):
    reader = nltk_corpus(corpus, data_dir)
    if not hasattr(reader, "categories"):
        raise DataFormatError(f"NLTK corpus {corpus!r} is not categorized: it has no labels")
    categories = reader.categories()
    one_file_per_category = len(reader.fileids()) <= len(categories)
    examples = []
    for label in categories:
        if one_file_per_category:
            units = (" ".join(sentence) for sentence in reader.sents(categories=label))
        else:
            units = (" ".join(reader.words(fileid)) for fileid in reader.fileids(categories=label))
        examples.extend(TextExample(text, label) for text in units)
    return _checked(TextDataset(name or f"nltk:{corpus}", examples), f"NLTK corpus {corpus!r}")


# Files --------------------------------------------------------------------------------------


# Python's csv module refuses fields over 131,072 characters; a review may be longer. Above this,
# a field is refused with a message (a file of one unterminated quote would otherwise be read whole).
MAX_FIELD_CHARACTERS = 10_000_000


def load_csv(path):
    """Examples from a CSV with a header naming columns `text` and `label` (UTF-8, a BOM allowed).

    The whole file is decoded first, so that a bad byte is reported with the line that holds it."""
    if not path.is_file():
        raise DataNotFoundError(f"csv:{path}: no such file")
    data = path.read_bytes()
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataFormatError(
            f"{path}:{line}: not valid UTF-8 (byte {data[error.start]:#04x}); save the file as UTF-8"
        ) from None
    if "\x00" in content:
        line = content.count("\n", 0, content.index("\x00")) + 1
        raise DataFormatError(f"{path}:{line}: a NUL character: not a text CSV (UTF-16 or binary?)")
    reader = csv.DictReader(io.StringIO(content, newline=""))
    previous_limit = csv.field_size_limit(MAX_FIELD_CHARACTERS)
    try:
        columns = reader.fieldnames or []
        missing = [c for c in ("text", "label") if c not in columns]
        if missing:
            raise DataFormatError(
                f"{path}: the CSV needs columns 'text' and 'label' (header line); "
                f"missing {', '.join(missing)}, found {columns or 'no header'}"
            )
        examples, skipped = [], Counter()
        for row in reader:
            text, label = (row["text"] or "").strip(), (row["label"] or "").strip()
            if not text:
                skipped["empty text"] += 1
            elif not label:
                skipped["empty label"] += 1
            else:
                examples.append(TextExample(text, label))
    except csv.Error as error:
        detail = (
            f"a field over {MAX_FIELD_CHARACTERS:,} characters (an unclosed quote?)"
            if "field larger than field limit" in str(error)
            else str(error)
        )
        raise DataFormatError(f"{path}:{reader.line_num}: not a readable CSV: {detail}") from None
    finally:
        csv.field_size_limit(previous_limit)
    return _checked(TextDataset(f"csv:{path}", examples, dict(skipped)), str(path))


def load_folder(path):
    if not path.is_dir():
        raise DataNotFoundError(f"folder:{path}: no such folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataFormatError(f"{path}: no class files; put one text file per class, one example a line")
    examples, skipped = [], Counter()
    for file in files:
        label, count = file.stem, 0
        for number, raw in enumerate(file.read_bytes().split(b"\n"), start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as error:
                raise DataFormatError(f"{file}:{number}: not valid UTF-8 (byte {raw[error.start]:#04x})") from None
            if line:
                examples.append(TextExample(line, label))
                count += 1
        if count == 0:
            raise DataFormatError(f"{file}: class {label!r} has no examples (the file is empty)")
    return _checked(TextDataset(f"folder:{path}", examples, dict(skipped)), str(path))


def _checked(dataset, where):
    labels = dataset.labels
    if len(labels) < 2:
        raise DataFormatError(f"{where}: a classifier needs at least two labels, found {labels}")
    return dataset


# Splits -------------------------------------------------------------------------------------


def stratified_folds(labels, k, seed):
    """Fold number (0..k-1) of each example: each label spread evenly, in a seeded order."""
    labels = np.asarray(labels)
    folds = np.empty(len(labels), dtype=int)
    rng = np.random.default_rng(seed)
    offset = 0
    for label in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        folds[members] = (np.arange(len(members)) + offset) % k
        offset += len(members)
    return folds


def split_indices(labels, seed, fold=None, folds=10):
    """{"train", "valid", "test"} index arrays, stratified by label.

    Without `fold`: a fixed 80/10/10 split (folds 0-7 / 8 / 9 of 10).
    With `fold` k of `folds`: fold k is the test set, the next fold the
    validation set (for early stopping), the rest the training set.
    """
    assignment = stratified_folds(labels, folds if fold is not None else 10, seed)
    if fold is None:
        test, valid = 9, 8
    else:
        if folds < 3:
            raise DataFormatError(
                f"--cv {folds}: each fold tests once while the next one validates (early stopping) and the "
                f"others train, so at least 3 folds are needed; use --cv 3 or more"
            )
        if not 0 <= fold < folds:
            raise ValueError(f"fold {fold} is not in 0..{folds - 1}")
        test, valid = fold, (fold + 1) % folds
    return {
        "train": np.flatnonzero((assignment != test) & (assignment != valid)),
        "valid": np.flatnonzero(assignment == valid),
        "test": np.flatnonzero(assignment == test),
    }


# Encoding and batching ---------------------------------------------------------------------


def tokenize_texts(texts, tokenizer, chunk=2048):
    """Each text's tokens (strings), as `tokenizer` splits and cuts raw text."""
    import tensorflow as tf

    tokens = []
    for start in range(0, len(texts), chunk):
        ragged = tokenizer.cut(tokenizer.tokenize(tf.constant(texts[start : start + chunk])))
        tokens.extend([[t.decode("utf-8") for t in row] for row in ragged.to_list()])
    return tokens


def classification_dataset(token_ids, label_ids, batch_size, shuffle_seed=None, extra=None):
    """Batches of {"index", "words", "label"} and the `extra` columns, bucketed by length."""
    from pipelines.text import example_batches

    return example_batches({"words": token_ids, "label": label_ids, **(extra or {})}, batch_size, shuffle_seed)


def classification_metrics(gold, predicted, labels):
    """Accuracy and macro-averaged F1 (the mean over classes of each class's F1)."""
    gold, predicted = np.asarray(gold), np.asarray(predicted)
    f1s = []
    for label in labels:
        true_positive = np.sum((predicted == label) & (gold == label))
        predicted_count, gold_count = np.sum(predicted == label), np.sum(gold == label)
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / gold_count if gold_count else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {"accuracy": float(np.mean(gold == predicted)), "macro_f1": float(np.mean(f1s))}


def confusion_matrix(gold, predicted, labels):
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for g, p in zip(gold, predicted):
        matrix[index[g], index[p]] += 1
    return matrix
