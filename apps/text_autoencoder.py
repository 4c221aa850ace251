"""The seq2seq text auto-encoder: a sentence in, one vector (the code) out, the sentence rebuilt from it.

    python -m apps.text_autoencoder train                         # every English text the suite reads
    python -m apps.text_autoencoder train --dataset mr --swap-rate 0.1
    python -m apps.text_autoencoder evaluate --model runs:/RUN_ID/model
    python -m apps.text_autoencoder predict --model runs:/RUN_ID/model "a gripping , funny film ."
    python -m apps.text_autoencoder encode --model runs:/RUN_ID/model sentences.txt --output codes.npy
    python -m apps.text_autoencoder neighbours --model runs:/RUN_ID/model "a gripping , funny film ."
    python -m apps.text_autoencoder probe --model runs:/RUN_ID/model --dataset mr

Data: `pipelines.sentences` (review sentences, Multi30k's English captions, the treebank's
training files, ATIS and SNIPS training sentences, Inspec's training abstracts, any text the
sentiment app reads), held-out sentences chosen by a hash of their text. Model: the sentiment
app's text backbone (embedding and recurrent encoder, layers named alike, so that
`sentiment train --pretrained-encoder` starts from them), the code, and a decoder that rebuilds
the sentence from the code (`apps.autoencoder`). Input noise for a denoising auto-encoder: word
dropout and neighbour swaps, on the encoder's input only. Metrics on held-out sentences, decoded
greedily: exact reconstruction, token accuracy and BLEU, overall and by length.
"""

import sys

import keras

from apps import autoencoder, parts, runner
from apps.seq2seq import PREVIOUS, SOURCE, TokenSequenceApp
from apps.text_autoencoder_commands import COMMANDS
from apps.text_autoencoder_data import LOGITS, TARGET_EMBEDDING, SentenceData, encode_ids, metrics_of, reconstructor
from apps.text_backbone import text_backbone
from layers import Metadata, SwapNeighbours
from pipelines.reconstruction import by_length, length_figure

TEXTS = "polarity+multi30k+treebank+atis+snips+inspec"
SHOWN = 40  # reconstructions written to the report


class TextAutoencoder(TokenSequenceApp):
    name = "text_autoencoder"
    description = __doc__
    datasets = (TEXTS,)
    dataset_help = (
        "text sources joined by '+': mr, polarity, multi30k, treebank, atis, snips, inspec (their "
        "training splits), nltk:NAME, csv:PATH, folder:PATH"
    )
    monitor = "val_token_accuracy"
    curve_metrics = ("val_exact", "val_bleu")
    # The sentiment app's network, so that its encoder can start from this one's.
    defaults = {"cell": "lstm", "bidirectional": True, "units": 128, "dropout": 0.2, "epochs": 20, "patience": 3}
    data_arguments = runner.App.data_arguments + ("max_length", "max_words", "min_word_count")

    @property
    def search_space(self):
        return {**super().search_space, "code_size": {"choice": [128, 256, 512]}}

    def add_arguments(self, parser):
        parser.add_argument(
            "--embedding-dim", type=runner.positive_int, default=300,
            help="word embedding size (the sentiment app's default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--target-embedding-dim", type=runner.positive_int, default=128,
            help="the decoder's word embedding size (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--max-length", type=runner.positive_int, default=30,
            help="tokens read per sentence; longer ones are cut (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--max-words", type=runner.positive_int, default=8000,
            help="the most frequent training words kept; the rest are OOV (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--min-word-count", type=runner.positive_int, default=2,
            help="rarer training words are OOV (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--word-dropout", type=runner.fraction, default=0.1,
            help="denoising: replace each input word by OOV with this probability (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--swap-rate", type=runner.fraction, default=0.0,
            help="denoising: swap each input word with the next with this probability (default: %(default)s)",
        )  # fmt: skip
        autoencoder.add_arguments(parser)

    def commands(self):
        return COMMANDS

    # Data --------------------------------------------------------------------------------
    def load_data(self, args):
        data = SentenceData.build(
            args.dataset, args.data_dir, args.max_length, args.max_words, args.min_word_count, args.batch_size,
            args.seed,
        )  # fmt: skip
        print(
            "sentences: " + ", ".join(f"{s} {len(data.sentences[s])}" for s in data.sentences)
            + f"; {len(data.words.tokens)} words kept"
        )  # fmt: skip
        return data

    # Model -------------------------------------------------------------------------------
    def build_model(self, args, data):
        words = keras.Input((None,), dtype="int32", name=SOURCE)
        previous = keras.Input((None,), dtype="int32", name=PREVIOUS)
        noisy = (
            SwapNeighbours(args.swap_rate, seed=args.seed, name="swap_neighbours")(words) if args.swap_rate else words
        )
        _, _, memory = text_backbone(
            noisy, args, len(data.words), word_dropout=args.word_dropout, oov_id=data.words.oov_id,
            embedding_dropout=args.dropout, return_sequences=True,
        )  # fmt: skip
        steps = keras.layers.Embedding(len(data.words), args.target_embedding_dim, name=TARGET_EMBEDDING)(previous)
        outputs = autoencoder.decode(memory, keras.ops.not_equal(words, 0), steps, args)
        logits = keras.layers.Dense(len(data.words), dtype="float32", name=LOGITS)(outputs)
        return keras.Model({SOURCE: words, PREVIOUS: previous}, logits, name="text_autoencoder")

    # Metrics -----------------------------------------------------------------------------
    def evaluate(self, model, data, split):
        metrics, _, _ = metrics_of(reconstructor(model), data.words, data.tokens[split], data.max_length)
        return metrics

    def reports(self, model, data, split):
        metrics, references, rebuilt = metrics_of(reconstructor(model), data.words, data.tokens[split], data.max_length)
        rows = by_length(references, rebuilt)
        table = [f"{'length':8s} {'sentences':>9s} {'exact':>7s} {'tokens':>7s} {'BLEU':>7s}"]
        for label, count, m in rows:
            table.append(f"{label:8s} {count:9d} {100 * m['exact']:7.2f} {100 * m['token_accuracy']:7.2f} "
                         f"{100 * m['bleu']:7.2f}")  # fmt: skip
        shown = [f"in:  {' '.join(r)}\nout: {' '.join(h)}" for r, h in list(zip(references, rebuilt))[:SHOWN]]
        vectors = encode_ids(autoencoder.encoder_model(model, SOURCE), data.ids(split))
        sentences = data.sentences[split]
        groups = {"source": [s.source for s in sentences]}
        if any(s.label for s in sentences):
            groups["label"] = [s.label or "(none)" for s in sentences]
        return {
            f"by_length_{split}.txt": "\n".join(table) + "\n",
            f"by_length_{split}.png": length_figure(rows),
            f"reconstructions_{split}.txt": "\n\n".join(shown) + "\n",
            f"code_map_{split}.png": autoencoder.map_figure(vectors, groups, f"codes of the {split} sentences"),
            f"codes_{split}.tsv": autoencoder.codes_table([s.text for s in sentences], vectors),
        }

    # Serving -----------------------------------------------------------------------------
    def serving_model(self, model, data, args):
        """The trained auto-encoder with its vocabulary and settings (a `Metadata` part); tokenizing
        and decoding run beside it, in `apps.text_autoencoder_commands`."""
        settings = {"words": data.words.to_dict(), "max_length": data.max_length, "dataset": args.dataset}
        logits = Metadata(settings, name=parts.SETTINGS)(model.output)
        return keras.Model(model.input, logits, name="text_autoencoder")

    def evaluate_saved(self, serving_model, args):
        from apps.text_autoencoder_commands import saved_data

        words, max_length, data = saved_data(serving_model, args)
        metrics, _, _ = metrics_of(reconstructor(serving_model), words, data.tokens[args.split], max_length)
        return metrics

    def predict(self, serving_model, inputs, args):
        from apps.text_autoencoder_commands import rebuild

        return rebuild(serving_model, inputs)

    def show(self, record, args):
        print(f"in:      {record['text']}\nread:    {record['read']}\nrebuilt: {record['rebuilt']}\n")


APP = TextAutoencoder()

if __name__ == "__main__":
    sys.exit(runner.main(APP))
