"""Syntactic parsing as sequence-to-sequence learning (Vinyals et al. 2015): read a sentence, write its tree.

    python -m apps.parsing train
    python -m apps.parsing train --attention none                 # the fixed-vector encoder-decoder
    python -m apps.parsing evaluate --model runs:/RUN_ID/model --evalb-files out/
    python -m apps.parsing predict --model runs:/RUN_ID/model "The luxury auto maker last year sold 1,214 cars in the U.S."

Data: the Penn Treebank sample through NLTK's reader, cleaned as parsing papers clean it
(`pipelines.trees`), split by file (default train wsj_0001-0169, valid 0170-0179, test
0180-0189; `--train-files` etc. take other ranges). Output: the tree linearized as
`(S (NP XX )NP (VP XX ... )VP )S`, part-of-speech tags as XX. Model: `apps.seq2seq` (a
recurrent encoder, an attention decoder of any cell kind that also reads the encoder's
state of the next unconsumed word). Decoding is constrained so that every output is a
well-formed tree with one XX per word, the words (and for scoring, the gold tags) put back.
Metrics: labelled brackets with EVALB's semantics and COLLINS.prm (`pipelines.parse_metrics`),
beside a right-branching baseline on the same sentences.
"""

import argparse
import sys
from pathlib import Path

import keras
import numpy as np
from nltk.tokenize import TreebankWordTokenizer
from nltk.tree import Tree

from apps import parts, runner, seq2seq
from apps.parsing_data import (
    ParseData,
    Parser,
    attention_matrix,
    gold_and_test_lines,
    parse_metrics,
    tagged,
    without_tags,
)
from apps.parts import Parts
from layers import Metadata
from pipelines.parse_metrics import evalb, label_scores
from pipelines.sources import DataFormatError
from pipelines.trees import DEFAULT_FILES, TAG_SYMBOL, load_treebank, one_line, right_branching
from pipelines.vocab import Vocabulary

SPLITS = ("train", "valid", "test")
ATTENTION_SENTENCES = 3  # attention maps drawn per report


def add_file_arguments(parser, splits=SPLITS):
    for split in splits:
        parser.add_argument(
            f"--{split}-files",
            default=DEFAULT_FILES[split],
            metavar="RANGE",
            help=f"treebank files of the {split} split: a range like wsj_0190-wsj_0199, one file, "
            "or a comma-separated list (default: %(default)s)",
        )


class Parsing(seq2seq.TokenSequenceApp):
    name = "parsing"
    display_flags = ("bracketed",)
    description = __doc__
    datasets = ("treebank",)
    monitor = "val_f1"
    curve_metrics = ("val_complete_match",)
    legacy_arguments = {"next_word": True, "char_features": 0}  # runs saved before these flags
    defaults = {"cell": "lstm", "bidirectional": True, "units": 128, "dropout": 0.3, "epochs": 40, "patience": 6}
    data_arguments = runner.App.data_arguments + (
        "train_files", "valid_files", "test_files", "min_word_count", "char_features",
    )  # fmt: skip

    @property
    def search_space(self):
        return {**super().search_space, "attention": {"choice": ["additive", "multiplicative", "none"]}}

    def add_arguments(self, parser):
        seq2seq.add_arguments(parser)
        seq2seq.add_generation_arguments(parser)
        add_file_arguments(parser)
        parser.add_argument(
            "--next-word",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="give each decoder step the encoder's output at the next word not yet written as XX, "
            "so that it need not count them (default: %(default)s)",
        )
        parser.add_argument(
            "--min-word-count",
            type=runner.positive_int,
            default=1,
            help="rarer training words become OOV (default: %(default)s)",
        )

    def add_evaluate_arguments(self, parser):
        seq2seq.add_generation_arguments(parser)
        add_file_arguments(parser, ("valid", "test"))
        parser.add_argument(
            "--evalb-files",
            metavar="DIR",
            help="also write DIR/gold.mrg and DIR/test.mrg, one tree a line, for the real EVALB",
        )

    def add_predict_arguments(self, parser):
        seq2seq.add_generation_arguments(parser)
        parser.add_argument("--bracketed", action="store_true", help="print each tree on one line, in Penn format")

    # Data --------------------------------------------------------------------------------
    @staticmethod
    def files(args, splits=SPLITS):
        return {split: getattr(args, f"{split}_files") for split in splits if hasattr(args, f"{split}_files")}

    def load_data(self, args):
        trees = load_treebank(args.data_dir, self.files(args))
        for split, found in trees.items():
            if not found:
                raise DataFormatError(f"the {split} files ({getattr(args, f'{split}_files')}) hold no tree")
        data = ParseData.build(
            trees, args.batch_size, args.seed, args.min_word_count, args.beam_width, args.length_alpha,
            args.char_features,
        )  # fmt: skip
        print(
            "treebank: " + ", ".join(f"{s} {len(t)}" for s, t in trees.items())
            + f" trees; {len(data.words.tokens)} words, {len(data.symbols.tokens)} output symbols"
        )  # fmt: skip
        return data

    # Model -------------------------------------------------------------------------------
    def build_model(self, args, data):
        return seq2seq.build_model(
            args,
            len(data.words),
            len(data.symbols),
            data.words.oov_id,
            data.symbols.id(TAG_SYMBOL) if args.next_word else None,
            name="parser",
        )

    # Metrics -----------------------------------------------------------------------------
    def parser(self, model, data):
        return Parser(model, data.words, data.symbols, data.beam_width, data.alpha)

    def parse_split(self, model, data, split):
        gold = data.trees[split]
        sentences_tags = [tagged(t) for t in gold]
        trees, sequences = self.parser(model, data).parse(
            [w for w, _ in sentences_tags], [t for _, t in sentences_tags]
        )
        return gold, trees, sequences

    def evaluate(self, model, data, split):
        gold, trees, _ = self.parse_split(model, data, split)
        return parse_metrics(gold, trees)

    def baseline_metrics(self, data, split):
        return right_branching_metrics(data.trees[split])

    def reports(self, model, data, split):
        gold, trees, _ = self.parse_split(model, data, split)
        gold_lines, test_lines = gold_and_test_lines(gold, trees)
        return {
            f"label_f1_{split}.txt": label_table(label_scores(gold_lines, test_lines)),
            f"trees_{split}.txt": side_by_side(gold, trees),
            f"attention_{split}.png": self.attention_figure(model, data, gold),
        }

    def attention_figure(self, model, data, gold):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        chosen = sorted(gold, key=lambda t: abs(len(t.leaves()) - 12))[:ATTENTION_SENTENCES]
        sentences = [t.leaves() for t in chosen]
        record = []
        parser = Parser(model, data.words, data.symbols)  # greedy: one row per sentence, in order
        if parser.generator.decoder.attention is None:
            figure, axis = plt.subplots(figsize=(6, 2))
            axis.text(0.5, 0.5, "no attention (--attention none)", ha="center", va="center")
            axis.axis("off")
            return figure
        sequences = parser.symbol_sequences(sentences, record=record)
        figure, axes = plt.subplots(1, len(sentences), figsize=(7 * len(sentences), 12))
        for item, (axis, words, symbols) in enumerate(zip(np.atleast_1d(axes), sentences, sequences)):
            weights = attention_matrix(record, item, len(symbols), len(words))
            image = axis.imshow(weights, aspect="auto", cmap="viridis", vmin=0)
            figure.colorbar(image, ax=axis, fraction=0.04)
            axis.set_xticks(range(len(words)), words, rotation=90, fontsize=8)
            axis.set_yticks(range(len(symbols)), symbols, fontsize=7)
            axis.set_title("attention of each output symbol over the words", fontsize=9)
        figure.tight_layout()
        return figure

    # Serving -----------------------------------------------------------------------------
    def serving_model(self, model, data, args):
        """The trained parser with its vocabularies (a `Metadata` part); generation runs beside it
        (`apps.parsing_data.Parser`), as the speech app's beam search does."""
        settings = {"words": data.words.to_dict(), "symbols": data.symbols.to_dict()}
        logits = Metadata(settings, name=parts.SETTINGS)(model.output)
        return keras.Model(model.input, logits, name="parsing")

    def model_metadata(self, serving_model):
        return {"symbols": Parts(serving_model).settings.values["symbols"]["tokens"]}

    def saved_parser(self, serving_model, args):
        settings = Parts(serving_model).settings.values
        words, symbols = Vocabulary.from_dict(settings["words"]), Vocabulary.from_dict(settings["symbols"])
        return Parser(serving_model, words, symbols, args.beam_width, args.length_alpha), words, symbols

    def evaluate_saved(self, serving_model, args):
        parser, words, symbols = self.saved_parser(serving_model, args)
        spec = self.files(args, (args.split,)).get(args.split, DEFAULT_FILES[args.split])
        gold = load_treebank(args.data_dir, {args.split: spec})[args.split]
        if not gold:
            raise runner.UserError(f"the {args.split} files ({spec}) hold no tree")
        pairs = [tagged(t) for t in gold]
        trees, _ = parser.parse([w for w, _ in pairs], [t for _, t in pairs])
        metrics = {**parse_metrics(gold, trees), **right_branching_metrics(gold)}
        if args.evalb_files:
            write_evalb_files(Path(args.evalb_files), gold, trees)
        return metrics

    def predict(self, serving_model, inputs, args):
        parser, _, _ = self.saved_parser(serving_model, args)
        tokenizer = TreebankWordTokenizer()
        sentences = [tokenizer.tokenize(text) for text in inputs]
        for number, words in enumerate(sentences, start=1):
            if not words:
                raise runner.UserError(f"input {number} has no words to parse")
        trees, _ = parser.parse(sentences)
        return [{"text": text, "tree": one_line(without_tags(tree))} for text, tree in zip(inputs, trees)]

    def show(self, record, args):
        if args.bracketed:
            print(record["tree"])
            return
        print(record["text"])
        Tree.fromstring(record["tree"]).pretty_print()


def right_branching_metrics(gold):
    """The right-branching baseline's F1 (all lengths and <= 40 words) on the gold trees' sentences."""
    baseline = [right_branching(t.pos()) for t in gold]
    return {f"right_branching_{k}": v for k, v in parse_metrics(gold, baseline).items() if "f1" in k}


def write_evalb_files(folder, gold, trees):
    folder.mkdir(parents=True, exist_ok=True)
    gold_lines, test_lines = gold_and_test_lines(gold, trees)
    (folder / "gold.mrg").write_text("\n".join(gold_lines) + "\n")
    (folder / "test.mrg").write_text("\n".join(test_lines) + "\n")
    print(f"EVALB files: {folder / 'gold.mrg'} {folder / 'test.mrg'} (e.g. evalb -p COLLINS.prm gold.mrg test.mrg)")


def label_table(scores):
    lines = [f"{'label':8s} {'gold':>6s} {'test':>6s} {'match':>6s} {'recall':>7s} {'prec.':>7s} {'F1':>7s}"]
    for label, row in scores.items():
        lines.append(
            f"{label:8s} {row['gold']:6d} {row['test']:6d} {row['match']:6d} "
            f"{row['recall']:7.2f} {row['precision']:7.2f} {row['f1']:7.2f}"
        )
    return "\n".join(lines) + "\n"


def side_by_side(gold, trees, count=40, width=70):
    """Gold and predicted trees in two columns, the sentence's own F1 above them."""
    blocks = []
    for gold_tree, tree in list(zip(gold, trees))[:count]:
        score = evalb(*gold_and_test_lines([gold_tree], [tree]))["all"]["f1"]
        left = gold_tree.pformat(margin=width).splitlines()
        right = ["(malformed)"] if tree is None else tree.pformat(margin=width).splitlines()
        rows = [f"{'gold':<{width}}  predicted (sentence F1 {score:.1f})"]
        for i in range(max(len(left), len(right))):
            a = left[i] if i < len(left) else ""
            b = right[i] if i < len(right) else ""
            rows.append(f"{a:<{width}}  {b}")
        blocks.append(" ".join(gold_tree.leaves()) + "\n" + "\n".join(rows))
    return "\n\n".join(blocks) + "\n"


APP = Parsing()

if __name__ == "__main__":
    sys.exit(runner.main(APP))
