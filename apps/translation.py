"""Machine translation with an attention encoder-decoder (Bahdanau et al. 2015, Luong et al. 2015).

    python -m apps.translation train --source en --target de
    python -m apps.translation train --source en --target fr --unit words --attention none
    python -m apps.translation evaluate --model runs:/RUN_ID/model --beam-width 5
    python -m apps.translation predict --model runs:/RUN_ID/model "A man rides a bike down a hill."

Data: Multi30k (`pipelines.parallel`; en, de, fr captions; train / val / test_2016_flickr) or a
folder of line-aligned files. Units: WordPiece subwords learnt from the training split (default)
or words (`pipelines.subwords`), case kept, reversible, so output is scored on the text it spells.
Model: `apps.seq2seq` (a recurrent encoder of any cell kind, an attention decoder); the saved
model carries its tokenizer (tensorflow-text), so it reads raw sentences. Decoding: greedy or
beam search (`layers.generation`), never OOV. Metrics: sacreBLEU's BLEU and chrF against the raw
references (cased, sacreBLEU's 13a tokenization; the signatures are logged with each test score).
"""

import sys
import textwrap

import keras
import numpy as np
import sacrebleu

from apps import parts, runner, seq2seq
from apps.app import model_state
from apps.parts import Parts
from apps.translation_data import TranslationData, Translator, scored, translation_metrics
from layers import Metadata
from pipelines.parallel import load_parallel
from pipelines.subwords import UNITS, SubwordTokenizer, detokenize
from pipelines.vocab import Vocabulary

TRANSLATOR = "translator"  # the training model, inside the serving model
SOURCE_UNITS, SOURCE_IDS = "source_units", "source_ids"
SHOWN = 40  # sample translations written to the report
ATTENTION_SENTENCES = 3


class Translation(seq2seq.TokenSequenceApp):
    name = "translation"
    description = __doc__
    datasets = ("multi30k",)
    dataset_help = "multi30k, or folder:PATH holding {train,valid,test}.LANG, one sentence a line"
    monitor = "val_bleu"
    curve_metrics = ("val_chrf",)
    # The goal's third attempt, the best of three on validation BLEU (docs/results/translation.md).
    defaults = {
        "cell": "gru", "bidirectional": True, "units": 256, "dropout": 0.3, "batch_size": 64, "epochs": 30,
        "patience": 4, "reduce_lr": 1,
    }  # fmt: skip
    data_arguments = runner.App.data_arguments + (
        "source", "target", "unit", "vocabulary_size", "min_word_count", "max_length",
    )  # fmt: skip

    @property
    def search_space(self):
        return {
            **super().search_space,
            "cell": {"choice": ["gru", "lstm", "peephole_lstm"]},
            "attention": {"choice": ["additive", "multiplicative", "none"]},
        }

    def add_arguments(self, parser):
        parser.add_argument("--source", default="en", help="the source language (default: %(default)s)")
        parser.add_argument("--target", default="de", help="the target language (default: %(default)s)")
        parser.add_argument(
            "--unit", choices=UNITS, default="wordpiece",
            help="wordpiece: subwords learnt from the training split; words: whole words and "
            "punctuation (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--vocabulary-size", type=runner.positive_int, default=8000,
            help="WordPiece pieces learnt per language (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--min-word-count", type=runner.positive_int, default=2,
            help="--unit words: rarer training words are OOV (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--max-length", type=runner.positive_int, default=80,
            help="units read and written per sentence; longer ones are cut (default: %(default)s)",
        )  # fmt: skip
        seq2seq.add_arguments(parser, character_features=False)
        # Luong's decoder (attention after one fused recurrent layer) and label smoothing.
        parser.set_defaults(
            embedding_dim=256, target_embedding_dim=256, attention="multiplicative", input_feeding=False,
            label_smoothing=0.1,
        )  # fmt: skip
        seq2seq.add_generation_arguments(parser, beam_width=5, alpha=1.0)
        parser.add_argument(
            "--valid-beam-width", type=runner.positive_int, default=1,
            help="beam width of the validation translations after each epoch (default: %(default)s, "
            "greedy: fast); the test split uses --beam-width",
        )  # fmt: skip

    def add_evaluate_arguments(self, parser):
        seq2seq.add_generation_arguments(parser, beam_width=5, alpha=1.0)

    def add_predict_arguments(self, parser):
        seq2seq.add_generation_arguments(parser, beam_width=5, alpha=1.0)

    # Data --------------------------------------------------------------------------------
    def load_data(self, args):
        data = TranslationData.build(args)
        print(
            f"{args.source}->{args.target}: "
            + ", ".join(f"{s} {len(p)}" for s, p in data.corpus.pairs.items())
            + f" pairs; {args.unit}: {len(data.source_words.tokens)} source, "
            f"{len(data.target_words.tokens)} target units"
        )
        return data

    # Model -------------------------------------------------------------------------------
    def build_model(self, args, data):
        return seq2seq.build_model(
            args, len(data.source_words), len(data.target_words), data.source_words.oov_id, name=TRANSLATOR
        )

    # Metrics -----------------------------------------------------------------------------
    def translations(self, model, data, split):
        """The detokenized translations of `split` (the test split's kept with the model, so
        that its reports do not decode it again)."""
        beam = data.valid_beam_width if split == "valid" else data.beam_width
        state = model_state(model)
        key = (split, beam, data.alpha)
        if getattr(state, "translated", (None,))[0] != key:
            translator = Translator(model, data.target_words, beam, data.alpha)
            state.translated = (key, translator.translate(data.source_ids(split)))
        return state.translated[1]

    def evaluate(self, model, data, split):
        model_state(model).translated = (None,)  # new weights after each epoch
        return translation_metrics(self.translations(model, data, split), data.references(split), data.corpus.target)

    def reports(self, model, data, split):
        hypotheses, references = self.translations(model, data, split), data.references(split)
        sources = [pair[0] for pair in data.corpus.pairs[split]]
        scores, named = scored(hypotheses, references, data.corpus.target)
        summary = "".join(f"{name} {100 * scores[name]:.2f}  {named[name]}\n" for name in named)
        return {
            f"scores_{split}.txt": summary,
            f"translations_{split}.md": sample_table(sources, references, hypotheses),
            f"translations_{split}.txt": "\n".join(hypotheses) + "\n",
            f"attention_{split}.png": attention_figure(model, data, split),
        }

    # Serving -----------------------------------------------------------------------------
    def serving_model(self, model, data, args):
        """Raw source sentences (and previous target ids) -> next-unit logits: the tokenizer and
        the unit lookup in the model, the settings generation needs in a `Metadata` part."""
        text = keras.Input(shape=(), dtype="string", name="text")
        previous = keras.Input((None,), dtype="int32", name=seq2seq.PREVIOUS)
        units = SubwordTokenizer(data.unit, data.pieces.get("source"), data.max_length, name=SOURCE_UNITS)(text)
        ids = data.source_words.string_lookup(name=SOURCE_IDS)(units)
        logits = model({seq2seq.SOURCE: ids, seq2seq.PREVIOUS: previous})
        settings = {
            "source": data.corpus.source, "target": data.corpus.target, "unit": data.unit,
            "target_units": data.target_words.to_dict(),
        }  # fmt: skip
        logits = Metadata(settings, name=parts.SETTINGS)(logits)
        return keras.Model({"text": text, seq2seq.PREVIOUS: previous}, logits, name="translation")

    def model_metadata(self, serving_model):
        settings = Parts(serving_model).settings.values
        return {"source": settings["source"], "target": settings["target"], "unit": settings["unit"]}

    def evaluate_saved(self, serving_model, args):
        settings = Parts(serving_model).settings.values
        corpus = load_parallel(args.dataset, settings["source"], settings["target"], args.data_dir, (args.split,))
        pairs = corpus.pairs[args.split]
        hypotheses = saved_translations(serving_model, [s for s, _ in pairs], args)
        references = [t for _, t in pairs]
        scores, named = scored(hypotheses, references, settings["target"])
        for name, signature in named.items():
            print(f"{name}: {signature}")
        return scores

    def predict(self, serving_model, inputs, args):
        for number, text in enumerate(inputs, start=1):
            if not text.strip():
                raise runner.UserError(f"input {number} is empty: give a sentence to translate")
        translations = saved_translations(serving_model, inputs, args)
        return [{"text": text, "translation": translation} for text, translation in zip(inputs, translations)]

    def show(self, record, args):
        print(record["translation"])


def saved_translations(serving_model, texts, args):
    """Raw sentences -> translations with a saved serving model: its own tokenizer and lookup
    layers give the source ids, its training model generates."""
    found = Parts(serving_model)
    ids = found.required(SOURCE_IDS)(found.required(SOURCE_UNITS)(np.asarray(texts, dtype=object)))
    id_rows = [[int(i) for i in row if i != 0] for row in keras.ops.convert_to_numpy(ids)]
    target_words = Vocabulary.from_dict(found.settings.values["target_units"])
    translator = Translator(found.required(TRANSLATOR), target_words, args.beam_width, args.length_alpha)
    return translator.translate(id_rows)


def sample_table(sources, references, hypotheses, count=SHOWN):
    """A Markdown table of the first sentences: source, reference, translation, sentence BLEU."""
    rows = ["| # | source | reference | translation | sentence BLEU |", "|---|---|---|---|---|"]
    for index, (source, reference, hypothesis) in enumerate(list(zip(sources, references, hypotheses))[:count]):
        score = sacrebleu.sentence_bleu(hypothesis, [reference]).score
        cells = [c.replace("|", "\\|") for c in (source, reference, hypothesis)]
        rows.append(f"| {index + 1} | {cells[0]} | {cells[1]} | {cells[2]} | {score:.1f} |")
    return "\n".join(rows) + "\n"


def attention_figure(model, data, split):
    """The attention of each generated unit over the source units (greedy), for a few sentences
    of about 12 units."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    translator = Translator(model, data.target_words)
    if translator.generator.decoder.attention is None:
        figure, axis = plt.subplots(figsize=(6, 2))
        axis.text(0.5, 0.5, "no attention (--attention none)", ha="center", va="center")
        axis.axis("off")
        return figure
    sources = data.units[split][0]
    chosen = sorted(range(len(sources)), key=lambda i: (abs(len(sources[i]) - 12), i))[:ATTENTION_SENTENCES]
    figure, axes = plt.subplots(1, len(chosen), figsize=(6 * len(chosen), 6))
    for axis, index in zip(np.atleast_1d(axes), chosen):
        record = []
        ids = data.source_words.encode(sources[index])
        (units,) = translator.units([ids], record=record)
        steps = len(units) + 1  # the END step attends too
        weights = np.stack([step[0, : len(ids)] for step in record[:steps]])
        image = axis.imshow(weights, aspect="auto", cmap="viridis", vmin=0)
        figure.colorbar(image, ax=axis, fraction=0.04)
        axis.set_xticks(range(len(ids)), sources[index], rotation=90, fontsize=8)
        axis.set_yticks(range(steps), [*units, "[END]"][:steps], fontsize=8)
        axis.set_title(textwrap.fill(detokenize(units), 70), fontsize=8)
    figure.suptitle("attention of each translated unit over the source units", fontsize=10)
    figure.tight_layout()
    return figure


APP = Translation()

if __name__ == "__main__":
    sys.exit(runner.main(APP))
