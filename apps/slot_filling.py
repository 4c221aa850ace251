"""Slot filling with intent detection on ATIS / SNIPS: a slot tag per word, an intent per sentence.

    python -m apps.slot_filling train --dataset atis --cell elman --context-window 7
    python -m apps.slot_filling predict --model runs:/RUN_ID/model "i want to fly to boston"

Joint model: words -> embedding -> context window -> recurrent stack; a slot
tag per word from each step (many-to-many), the intent from the masked mean of
the steps (many-to-one). A forward Jordan network outputs the slot
distribution itself, as in Mesnil et al. (2015), and reads the intent from
the word windows. The best epoch is chosen by validation slot F1
(conlleval semantics, via seqeval); metrics are reported on the test split.
"""

import argparse
import sys

import keras
import tensorflow as tf

from apps import characters, parts, runner
from apps.app import model_state
from apps.parts import Parts
from apps.slot_filling_data import SlotData, predict_examples
from apps.text_backbone import text_backbone
from layers import (
    AppendToSteps,
    ConditionalRandomField,
    ViterbiDecoder,
    bio_constraints,
)
from pipelines.slots import (
    intent_report,
    slot_metrics,
    SlotVocabularies,
    drop_words,
    load_slot_dataset,
    training_pairs,
)
from pipelines.text import LabelDecoder, SentenceTokenizer, WordLookup
from pipelines.vocab import Vocabulary


class SlotFilling(runner.App):
    name = "slot_filling"
    description = __doc__
    datasets = ("atis", "snips")
    monitor = "val_slot_f1"
    curve_metrics = ("val_intent_accuracy", "val_sentence_accuracy")
    # The best of the tuning runs on ATIS (docs/results/slot_filling.md).
    defaults = {"cell": "lstm", "bidirectional": True, "units": 200, "dropout": 0.5, "epochs": 30}
    # Older runs decoded by argmax, without a CRF, attention or character features.
    legacy_arguments = {
        "slot_decoding": "argmax", "slot_crf": False, "self_attention": 0, "sentence_to_slots": False, "char_features": 0,
    }  # fmt: skip
    data_arguments = runner.App.data_arguments + (
        "fold_digits",
        "min_word_count",
        "max_length",
        "word_dropout",
        "word_signatures",
        "char_features",
    )

    @property
    def search_space(self):
        return {
            **super().search_space,
            "embedding_dim": {"choice": [100, 200, 300]},
            "context_window": {"choice": [1, 3, 5, 7]},
        }

    def add_arguments(self, parser):
        parser.add_argument(
            "--embedding-dim", type=runner.positive_int, default=300, help="word embedding size (default: %(default)s)"
        )
        parser.add_argument(
            "--context-window",
            type=runner.odd_positive_int,
            default=3,
            help="odd number of words each step sees, centred on its own (Mesnil et al. 2015); 1: none (default: %(default)s)",
        )
        parser.add_argument(
            "--fold-digits",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="write every digit as 0, so unseen numbers look like seen ones (default: %(default)s)",
        )
        parser.add_argument(
            "--min-word-count",
            type=runner.positive_int,
            default=1,
            help="rarer training words become OOV (their signature, with --word-signatures) (default: %(default)s)",
        )
        parser.add_argument(
            "--word-signatures",
            action=argparse.BooleanOptionalAction,
            default=False,
            help="read a word unseen in training by its shape ('dh8' -> [UNK:aa0]) instead of "
            "one OOV vector for all; word dropout then trains these (default: %(default)s)",
        )
        characters.add_argument(parser)
        parser.add_argument(
            "--word-dropout",
            type=runner.fraction,
            default=0.0,
            help="replace each training word by OOV (by its signature, with --word-signatures) "
            "with this probability (default: %(default)s)",
        )
        parser.add_argument(
            "--self-attention",
            type=runner.non_negative_int,
            default=0,
            metavar="HEADS",
            help="add multi-head self-attention with this many heads over the recurrent features; "
            "each word's tag reads them and what they attend to; 0: none (default: %(default)s)",
        )
        parser.add_argument(
            "--sentence-to-slots",
            action=argparse.BooleanOptionalAction,
            default=False,
            help="let each word's tag also read the sentence vector the intent is predicted from "
            "(default: %(default)s)",
        )
        parser.add_argument(
            "--intent-weight",
            type=runner.non_negative_number,
            default=1.0,
            help="weight of the intent loss beside the slot loss (default: %(default)s)",
        )
        parser.add_argument(
            "--max-length",
            type=runner.positive_int,
            default=64,
            help="longest sentence, in words, the saved model reads (default: %(default)s)",
        )
        parser.add_argument(
            "--slot-decoding",
            choices=("viterbi", "argmax"),
            default="viterbi",
            help="how the per-word tag scores become tags: the best sequence in which every I-x "
            "continues an x chunk (Viterbi), or each word's best tag (argmax) (default: %(default)s)",
        )
        parser.add_argument(
            "--slot-crf",
            action=argparse.BooleanOptionalAction,
            default=False,
            help="train the slot tags as one sequence: a conditional random field learns a score "
            "for each tag following each other tag, trained on the sentence's likelihood and "
            "used by the Viterbi decoding (default: %(default)s)",
        )

    # Data --------------------------------------------------------------------------------
    def load_data(self, args):
        splits = load_slot_dataset(args.dataset, args.data_dir)
        tokenizer = SentenceTokenizer(args.max_length, fold_digits=args.fold_digits, name=parts.TOKENIZER)
        vocabularies = SlotVocabularies.build(
            splits["train"], tokenizer, args.min_word_count, signatures=args.word_signatures
        )
        print(
            f"{args.dataset}: "
            + ", ".join(f"{s} {len(e) if e else 0}" for s, e in splits.items())
            + f" sentences; {len(vocabularies.words.tokens)} words, "
            f"{len(vocabularies.tags.tokens)} slot tags, {len(vocabularies.intents.tokens)} intents"
        )
        return SlotData(
            splits, tokenizer, vocabularies, args.batch_size, args.seed, args.word_dropout,
            max_chars=characters.max_chars(args),
        )  # fmt: skip

    def slot_decoder(self, args, tags):
        if args.slot_decoding != "viterbi":
            return None
        transitions, first = bio_constraints(tags.specials + tags.tokens, tags.num_special)
        # The Jordan tagger's output is already a distribution; the others give logits.
        scores = "probabilities" if self.jordan_tags_directly(args) else "logits"
        learned = args.slot_crf
        return ViterbiDecoder(transitions, first, scores=scores, learned_scores=learned, name=parts.SLOT_DECODER)

    def check_crf_arguments(self, args):
        if not args.slot_crf:
            return
        if self.jordan_tags_directly(args):
            raise runner.UserError(
                "--slot-crf needs per-word tag scores, but a forward Jordan network outputs the tag "
                "distribution itself; use --bidirectional or drop --slot-crf"
            )
        if args.slot_decoding != "viterbi":
            raise runner.UserError("--slot-crf decodes with its learned transitions: drop --slot-decoding argmax")

    def fit_dataset(self, data, split):
        batches = data.batches(split, shuffle=split == "train")
        if split == "train" and data.word_dropout > 0:
            batches = batches.map(drop_words(data.word_dropout, data.vocabularies.words.oov_id, data.seed))
        return batches.map(training_pairs)

    def save_assets(self, data, folder):
        data.vocabularies.save(folder / "vocabularies")

    # Model -------------------------------------------------------------------------------
    @staticmethod
    def jordan_tags_directly(args):
        """Mesnil et al.'s Jordan tagger: the cell's softmax output y_t is the slot distribution."""
        return args.cell == "jordan" and not args.bidirectional

    def build_model(self, args, data):
        vocab = data.vocabularies
        # Here rather than in load_data: tuning trials share the data but may switch to Jordan.
        self.check_crf_arguments(args)
        decoder = self.slot_decoder(args, vocab.tags)
        crf = None
        words = keras.Input((None,), dtype="int32", name="words")
        inputs, windows, features = text_backbone(
            words, args, len(vocab.words), char_features=args.char_features, context_window=args.context_window,
            dropout=args.dropout,
            # A Jordan cell feeds back its previous output: a distribution over slot tags.
            output_units=len(vocab.tags),
        )  # fmt: skip
        if self.jordan_tags_directly(args):
            # The fed-back output is the prediction itself; the intent reads the words.
            slots = keras.layers.Activation("linear", dtype="float32", name="slots")(features)
            sentence = keras.layers.GlobalAveragePooling1D(name="sentence")(windows)
        else:
            features = keras.layers.Dropout(args.dropout, name="output_dropout")(features)
            heads = args.self_attention
            if heads:
                width = features.shape[-1]
                attended = keras.layers.MultiHeadAttention(
                    heads, key_dim=max(1, width // heads), dropout=args.dropout, seed=args.seed, name="self_attention"
                )(features, features)
                features = keras.layers.Concatenate(name="attended_features")([features, attended])
            sentence = keras.layers.GlobalAveragePooling1D(name="sentence")(features)
            if args.sentence_to_slots:
                features = AppendToSteps(name="with_sentence")([features, sentence])
            slots = keras.layers.Dense(len(vocab.tags), dtype="float32", name="slots")(features)
            if args.slot_crf:
                crf = ConditionalRandomField(len(vocab.tags), dtype="float32", name="slot_crf")
                slots = crf(slots)
        intent = keras.layers.Dense(len(vocab.intents), dtype="float32", name="intent")(sentence)
        model = keras.Model(inputs, {"slots": slots, "intent": intent}, name=parts.TAGGER)
        state = model_state(model)
        state.decoder, state.crf = decoder, crf
        return model

    def compile_arguments(self, args, data, model):
        intent_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        crf = model_state(model).crf
        if crf is not None:
            slot_loss = crf.loss(padding_id=data.vocabularies.tags.pad_id)
        else:
            slot_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not self.jordan_tags_directly(args))
        return {
            "loss": {"slots": slot_loss, "intent": intent_loss},
            "loss_weights": {"slots": 1.0, "intent": args.intent_weight},
        }

    # Metrics -----------------------------------------------------------------------------
    def evaluate(self, model, data, split):
        tags, intents = predict_examples(model, data, split)
        return slot_metrics(data.examples[split], tags, intents)

    def reports(self, model, data, split):
        from seqeval.metrics import classification_report  # imports scikit-learn: not at every start

        tags, intents = predict_examples(model, data, split)
        gold = [list(e.tags) for e in data.examples[split]]
        return {
            f"slot_report_{split}.txt": classification_report(gold, [list(t) for t in tags], digits=4, zero_division=0),
            f"intent_report_{split}.txt": intent_report(data.examples[split], intents),
        }

    # Serving -----------------------------------------------------------------------------
    def serving_model(self, model, data, args):
        """Raw sentences -> [intent, tag of word 1, ..., tag of word max_length] ("" pads)."""
        vocab = data.vocabularies
        text = keras.Input(shape=(), dtype="string", name="text")
        tokens = data.tokenizer(text)
        ids = vocab.words.lookup_layer(name=parts.WORD_IDS)(tokens)
        outputs = model(characters.tagger_inputs(ids, tokens, data.max_chars))
        slots = outputs["slots"]
        state = model_state(model)
        if state.decoder is not None:
            if state.crf is not None:
                state.decoder.copy_scores(state.crf)
            slots = state.decoder(slots, mask=keras.ops.not_equal(ids, 0))
        tags = LabelDecoder(vocab.tags.specials + vocab.tags.tokens, vocab.tags.num_special, name=parts.SLOT_TAGS)(
            slots, tokens
        )
        intent = LabelDecoder(
            vocab.intents.specials + vocab.intents.tokens, vocab.intents.num_special, name=parts.INTENT_LABEL
        )(outputs["intent"])
        result = keras.ops.concatenate([keras.ops.expand_dims(intent, 1), tags], axis=1)
        return keras.Model({"text": text}, result, name="slot_filling")

    @staticmethod
    def vocabularies_of(serving_model):
        """The vocabularies a saved serving model carries."""
        found = Parts(serving_model)
        word_ids = found.word_ids
        words = word_ids.get_vocabulary()
        tags = found.required(parts.SLOT_TAGS)
        intents = found.required(parts.INTENT_LABEL)
        return SlotVocabularies(
            words=Vocabulary(words[2:], signatures=isinstance(word_ids, WordLookup)),
            tags=Vocabulary(tags.labels[tags.num_special :]),
            intents=Vocabulary(intents.labels[intents.num_special :], padding=False),
        )

    def evaluate_saved(self, serving_model, args):
        splits = load_slot_dataset(args.dataset, args.data_dir)
        if splits.get(args.split) is None:
            raise runner.UserError(f"{args.dataset} has no {args.split} split here")
        found = Parts(serving_model)
        tagger = found.required(parts.TAGGER)
        # None for a model saved before Viterbi decoding, or with --slot-decoding argmax.
        model_state(tagger).decoder = found.optional(parts.SLOT_DECODER)
        data = SlotData(
            {args.split: splits[args.split]},
            found.tokenizer,
            self.vocabularies_of(serving_model),
            batch_size=64,
            seed=0,
            max_chars=characters.max_chars_of(serving_model),
        )
        # The gold tokens go through the model's own vocabulary and tagger, not its tokenizer.
        return self.evaluate(tagger, data, args.split)

    def predict(self, serving_model, inputs, args):
        tokenizer = Parts(serving_model).tokenizer
        all_tokens = tokenizer.tokenize(tf.constant(inputs)).to_list()
        outputs = serving_model.predict_on_batch({"text": tf.constant(inputs)})
        results = []
        for text, tokens, row in zip(inputs, all_tokens, outputs):
            tokens = [t.decode("utf-8") for t in tokens]
            if len(tokens) > tokenizer.max_length:
                print(
                    f"warning: {len(tokens)} words, the model reads the first {tokenizer.max_length}",
                    file=sys.stderr,
                )
                tokens = tokens[: tokenizer.max_length]
            tags = [t.decode("utf-8") for t in row[1 : 1 + len(tokens)]]
            results.append({"text": text, "words": tokens, "slots": tags, "intent": row[0].decode("utf-8")})
        return results

    def show(self, record, args):
        print(record["text"])
        width = max((len(t) for t in record["words"]), default=0)
        for token, tag in zip(record["words"], record["slots"]):
            print(f"  {token:<{width}}  {tag}")
        print(f"  intent: {record['intent']}\n")


APP = SlotFilling()

if __name__ == "__main__":
    sys.exit(runner.main(APP))
