"""The text auto-encoder's commands on a saved model: predict (rebuild), encode, neighbours, probe."""

import time
from pathlib import Path

import numpy as np

from apps import autoencoder, cli
from apps.app import UserError
from apps.parts import Parts
from apps.seq2seq import SOURCE
from apps.text_autoencoder_data import SentenceData, encode_ids, reconstruct, reconstructor, sentence_tokenizer
from pipelines.classification import load_text_dataset, tokenize_texts
from pipelines.vocab import Vocabulary


def settings_of(serving_model):
    values = Parts(serving_model).settings.values
    return Vocabulary.from_dict(values["words"]), int(values["max_length"]), values["dataset"]


def saved_data(serving_model, args):
    """(words, max length, the sentences of --dataset as the saved model reads them)."""
    words, max_length, _ = settings_of(serving_model)
    data = SentenceData.build(args.dataset, args.data_dir, max_length, None, 1, 256, 0, vocabulary=words)
    return words, max_length, data


def tokens_of(texts, max_length, where):
    """Each text's tokens; an empty one is refused, named by `where(index)`."""
    rows = tokenize_texts(list(texts), sentence_tokenizer(max_length))
    for index, row in enumerate(rows):
        if not row:
            raise UserError(f"{where(index)}: an empty sentence (no words to encode)")
    return rows


def rebuild(serving_model, inputs):
    """predict: each sentence and its reconstruction from the code."""
    words, max_length, _ = settings_of(serving_model)
    rows = tokens_of(inputs, max_length, lambda i: f"input {i + 1}")
    rebuilt = reconstruct(reconstructor(serving_model), words, [words.encode(r) for r in rows], max_length)
    results = []
    for text, row, out in zip(inputs, rows, rebuilt):
        results.append({"text": text, "read": " ".join(words.decode(words.encode(row))), "rebuilt": " ".join(out)})
    return results


def codes_of(serving_model, texts, where):
    words, max_length, _ = settings_of(serving_model)
    rows = tokens_of(texts, max_length, where)
    return encode_ids(autoencoder.encoder_model(serving_model, SOURCE), [words.encode(r) for r in rows])


def read_lines(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (pass a text file, one sentence a line)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text ({error})") from None
    if not any(line.strip() for line in lines):
        raise UserError(f"{path}: no sentences")
    return lines


# encode -----------------------------------------------------------------------------------
def add_encode(parser):
    parser.add_argument("file", help="a text file, one sentence a line")
    autoencoder.add_output_argument(parser)


def encode(serving_model, args):
    output = autoencoder.checked_output(args.output)
    lines = read_lines(args.file)
    vectors = codes_of(serving_model, lines, lambda i: f"{args.file}, line {i + 1}")
    autoencoder.write_codes(vectors, output)
    return vectors


# neighbours -------------------------------------------------------------------------------
def add_neighbours(parser):
    parser.add_argument("sentences", nargs="+", help="sentences to find the neighbours of")
    parser.add_argument("--count", type=cli.positive_int, default=10, help="neighbours shown (default: %(default)s)")
    parser.add_argument(
        "--in", dest="collection", metavar="FILE",
        help="search these sentences (one a line) instead of the model's training sentences",
    )  # fmt: skip
    parser.add_argument(
        "--limit", type=cli.positive_int, default=50000,
        help="training sentences searched, the first of the data set (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--data-dir", help="folder holding the data sets (default: $RNN_SUITE_DATA)")


def neighbours(serving_model, args):
    if args.collection:
        texts = read_lines(args.collection)
        texts = [t for t in texts if t.strip()]
    else:
        _, max_length, spec = settings_of(serving_model)
        args.dataset = spec
        _, _, data = saved_data(serving_model, args)
        texts = [s.text for s in data.sentences["train"][: args.limit]]
        print(f"searching {len(texts)} training sentences of {spec}")
    collection = codes_of(serving_model, texts, lambda i: f"collection sentence {i + 1}")
    queries = codes_of(serving_model, args.sentences, lambda i: f"sentence {i + 1}")
    similarities = autoencoder.cosine_similarities(queries, collection)
    results = []
    for text, row in zip(args.sentences, similarities):
        best = np.argsort(-row, kind="stable")[: args.count]
        results.append([(texts[i], float(row[i])) for i in best])
        print(text)
        for found, score in results[-1]:
            print(f"  {score:.3f}  {found}")
    return results


# probe ------------------------------------------------------------------------------------
def add_probe(parser):
    parser.add_argument(
        "--dataset", action="append",
        help="a labelled text set of the sentiment app (mr, polarity, nltk:subjectivity, csv:PATH, ...); "
        "repeat for several (default: mr)",
    )  # fmt: skip
    parser.add_argument("--folds", type=cli.int_at_least(2, "at least 2"), default=10, help="(default: %(default)s)")
    parser.add_argument("--seed", type=cli.seed, default=0, help="the folds' shuffle (default: %(default)s)")
    parser.add_argument("--data-dir", help="folder holding the data sets (default: $RNN_SUITE_DATA)")


def probe(serving_model, args):
    """Logistic regression on the frozen codes, and on the averaged word embeddings of the same
    encoder (the bag of words), scored by stratified K-fold cross-validation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    words, max_length, _ = settings_of(serving_model)
    table = serving_model.get_layer("embedding").embeddings.numpy()
    results = {}
    for spec in args.dataset or ["mr"]:
        examples = load_text_dataset(spec, args.data_dir).examples
        rows = tokenize_texts([e.text for e in examples], sentence_tokenizer(max_length))
        kept = [i for i, r in enumerate(rows) if r]
        ids = [words.encode(rows[i]) for i in kept]
        labels = np.array([examples[i].label for i in kept])
        features = {
            "code": encode_ids(autoencoder.encoder_model(serving_model, SOURCE), ids),
            "mean_embedding": np.stack([table[i].mean(axis=0) for i in ids]),
        }
        folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
        print(f"{spec}: {len(ids)} texts, {args.folds}-fold cross-validation, logistic regression (C = 1)")
        for name, x in features.items():
            started = time.perf_counter()
            classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            scores = cross_val_score(classifier, x, labels, cv=folds)
            results[f"{spec}_{name}"] = scores
            print(f"  {name:15s} accuracy {100 * scores.mean():6.2f} ± {100 * scores.std(ddof=1):.2f} "
                  f"({x.shape[1]} features, {time.perf_counter() - started:.1f} s)")  # fmt: skip
    return results


COMMANDS = {
    "encode": ("write the code of each sentence of a file (one a line) as .npy or .csv", add_encode, encode),
    "neighbours": (
        "print the training sentences nearest to a sentence by the cosine of their codes",
        add_neighbours,
        neighbours,
    ),
    "probe": (
        "score a logistic regression on the frozen codes beside one on averaged word embeddings",
        add_probe,
        probe,
    ),
}
