"""Connected-digit speech recognition with CTC on the Free Spoken Digit Dataset.

    python -m apps.speech_ctc train
    python -m apps.speech_ctc train --test-speakers theo      # speaker-independent test
    python -m apps.speech_ctc train --cv 5                     # leave one speaker out, each in turn
    python -m apps.speech_ctc predict --model runs:/RUN_ID/model recording.wav

Utterances of 1 to 7 digits are built from one speaker's FSDD recordings with
random gaps (see `pipelines.audio`). Features: librosa log-mel (or MFCC) with
deltas, normalized per utterance, computed once and cached. Model: a strided
convolution (optional), a stack of recurrent layers (bidirectional by
default), and per frame a distribution over the 10 digits and the CTC blank.
Loss: CTC with each utterance's own frame count and label length. Decoding:
greedy (best path) or beam search (`--beam-width`). Metrics: digit error rate
(edit distance / reference length) and sequence accuracy.

Splits by take: FSDD's test takes 0-4 -> test, 5-9 -> valid, 10-49 -> train.
`--test-speakers a,b` tests on those speakers' recordings instead and trains
and validates on the others'; `--cv K` holds out each of K speakers in turn.
"""

import json
import sys
from collections import Counter
from dataclasses import asdict

import keras
import numpy as np
import tensorflow as tf

from apps import parts, runner
from apps.parts import Parts
from apps.speech_ctc_data import SpeechData, ctc_frames_needed, posteriorgram_figure, speaker_split, speech_metrics
from layers import Metadata, RecurrentStack
from layers.ctc import CTCLoss, DropMask, FrameMask, beam_decode, greedy_decode, pack_targets
from pipelines.audio import (
    mask_spectrogram,
    FeatureCache,
    FeatureConfig,
    build_utterances,
    load_recordings,
    file_features,
)

CLASSES = 11  # blank + the digits 0-9 (digit d is class d + 1)
SPLIT_SEEDS = {"train": 1, "valid": 2, "test": 3}  # utterance sets differ per split, fixed per --data-seed


class SpeechCTC(runner.App):
    name = "speech_ctc"
    input_kind = "audio"
    description = __doc__
    datasets = ("fsdd",)
    dataset_help = (
        "fsdd (the Free Spoken Digit Dataset: every recording in its folder named DIGIT_SPEAKER_TAKE.wav), "
        "or folder:PATH (your own recordings, named the same way, e.g. 7_alice_12.wav)"
    )
    monitor = "val_digit_error_rate"
    monitor_mode = "min"
    curve_metrics = ("val_sequence_accuracy",)
    supports_cv = True
    # The take-split goal's configuration (docs/results/speech_ctc.md): 1.88 % digit error in under 14 minutes on 2 cores.
    defaults = {"cell": "gru", "bidirectional": True, "layers": 2, "units": 128, "dropout": 0.3,
                "epochs": 12, "patience": 6, "batch_size": 32, "learning_rate": 2e-3, "reduce_lr": 1}  # fmt: skip
    legacy_arguments = {"speed_perturb": 0.0}
    data_arguments = runner.App.data_arguments + (
        "features", "n_mels", "stride", "train_utterances", "valid_utterances", "test_utterances",
        "max_digits", "data_seed", "test_speakers", "beam_width", "fold", "cv",
        "freq_masks", "freq_mask_width", "time_masks", "time_mask_width", "speed_perturb",
    )  # fmt: skip

    @property
    def search_space(self):
        return {**super().search_space, "conv_filters": {"choice": [0, 64, 128]}}

    def add_arguments(self, parser):
        parser.add_argument("--features", choices=("logmel", "mfcc"), default="logmel", help="(default: %(default)s)")
        parser.add_argument("--n-mels", type=runner.positive_int, default=40, help="mel bands (default: %(default)s)")
        parser.add_argument(
            "--conv-filters",
            type=runner.non_negative_int,
            default=128,
            help="filters of the strided convolution; 0: none (default: %(default)s)",
        )
        parser.add_argument(
            "--stride", type=runner.positive_int, default=3, help="frames per output frame (default: %(default)s)"
        )
        parser.add_argument("--train-utterances", type=runner.positive_int, default=4000, help="(default: %(default)s)")
        parser.add_argument("--valid-utterances", type=runner.positive_int, default=500, help="(default: %(default)s)")
        parser.add_argument("--test-utterances", type=runner.positive_int, default=1000, help="(default: %(default)s)")
        parser.add_argument(
            "--max-digits",
            type=runner.positive_int,
            default=7,
            help="digits per utterance, at most (default: %(default)s)",
        )
        parser.add_argument(
            "--data-seed", type=runner.seed, default=0, help="seed of the utterance sets (default: %(default)s)"
        )
        parser.add_argument("--test-speakers", help="comma-separated speakers to test on (speaker-independent split)")
        parser.add_argument(
            "--beam-width",
            type=runner.non_negative_int,
            default=0,
            help="beam search width; 0: greedy decoding (default: %(default)s)",
        )
        # Augmentation of the training utterances: in the runner's "model" group, as argparse shows no
        # group nested in a group.
        parser.add_argument(
            "--speed-perturb", type=runner.fraction, default=0.2, metavar="RANGE",
            help="play each training recording at a speed drawn from [1 - RANGE, 1 + RANGE] (resampled: tempo and "
            "pitch change together; fixed per utterance, in the feature cache); 0: as recorded (default: %(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--freq-masks",
            type=runner.non_negative_int,
            default=0,
            help="SpecAugment: mel-band ranges hidden per utterance in each training batch (default: %(default)s)",
        )
        parser.add_argument(
            "--freq-mask-width",
            type=runner.positive_int,
            default=8,
            help="bands per range, at most (default: %(default)s)",
        )
        parser.add_argument(
            "--time-masks",
            type=runner.non_negative_int,
            default=0,
            help="SpecAugment: frame spans hidden per utterance in each training batch (default: %(default)s)",
        )
        parser.add_argument(
            "--time-mask-width",
            type=runner.positive_int,
            default=10,
            help="frames per span, at most (default: %(default)s)",
        )

    def add_predict_arguments(self, parser):
        parser.add_argument(
            "--beam-width",
            type=runner.non_negative_int,
            default=0,
            help="beam search width; 0: greedy (default: %(default)s)",
        )

    # Data --------------------------------------------------------------------------------
    def split_recordings(self, recordings, args):
        return speaker_split(recordings, args)

    def prepare_split(self, recordings, split, count, config, args, skipped):
        """The split's utterances and features; unusable utterances are counted in `skipped`."""
        speed_range = args.speed_perturb if split == "train" else 0.0
        built = build_utterances(
            recordings, count, seed=args.data_seed * 100 + SPLIT_SEEDS[split], max_digits=args.max_digits,
            speed_range=speed_range,
        )  # fmt: skip
        values, errors = FeatureCache().load(built, config, label=f"{split} features")
        for error in dict.fromkeys(errors):
            print(f"skipped: {error}", file=sys.stderr)
        kept_utterances, kept_values = [], []
        for utterance, value in zip(built, values):
            if value is None:
                skipped["utterances with unreadable audio"] += 1
            elif -(-len(value) // args.stride) < ctc_frames_needed(utterance.digits):
                skipped["utterances too short for their labels under CTC"] += 1
            else:
                kept_utterances.append(utterance)
                kept_values.append(value)
        return kept_utterances, kept_values

    def load_data(self, args):
        config = FeatureConfig(kind=args.features, n_mels=args.n_mels)
        recordings = self.split_recordings(load_recordings(args.dataset, args.data_dir), args)
        counts = {"train": args.train_utterances, "valid": args.valid_utterances, "test": args.test_utterances}
        utterances, arrays, skipped = {}, {}, Counter()
        for split, count in counts.items():
            utterances[split], arrays[split] = self.prepare_split(
                recordings[split], split, count, config, args, skipped
            )
        print(
            "utterances: " + ", ".join(f"{s} {len(u)}" for s, u in utterances.items())
            + f" ({len(recordings['train'])} training recordings); features {config.kind} x{config.dims}"
        )  # fmt: skip
        from apps import tracking  # MLflow: imported by the commands that track, not by predict

        tracking.log_skipped(skipped, words=2)
        masking = {
            "bands": config.bands,
            "freq_masks": args.freq_masks, "freq_width": args.freq_mask_width,
            "time_masks": args.time_masks, "time_width": args.time_mask_width,
        }  # fmt: skip
        return SpeechData(
            utterances, arrays, config, args.stride, args.batch_size, args.seed, args.beam_width, dict(skipped),
            masking,
        )  # fmt: skip

    def fit_dataset(self, data, split):
        stride = data.stride
        masking = data.masking if split == "train" else {}

        def pairs(batch):
            frames = batch["frames"]
            label_lengths = tf.reduce_sum(tf.cast(batch["labels"] != 0, "int32"), axis=1)
            features = mask_spectrogram(batch["features"], frames, **masking) if masking else batch["features"]
            inputs = {"features": features, "frames": frames}
            return inputs, pack_targets((frames + stride - 1) // stride, batch["labels"], label_lengths)

        return data.batches(split, shuffle=split == "train").map(pairs)

    def save_assets(self, data, folder):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "features.json").write_text(json.dumps(asdict(data.config), indent=1))
        (folder / "test_utterances.txt").write_text(
            "\n".join(
                " ".join(f"{r.digit}_{r.speaker}_{r.take}" for r in u.recordings) + f"\tgaps {list(u.gaps)}"
                for u in data.utterances.get("test", [])
            )
            + "\n"
        )

    # Model -------------------------------------------------------------------------------
    def build_model(self, args, data):
        config = data.config
        features_in = keras.Input((None, config.dims), name="features")
        frames_in = keras.Input((), dtype="int32", name="frames")
        x = Metadata({"features": asdict(config), "stride": args.stride}, name=parts.SETTINGS)(features_in)
        if args.conv_filters:
            x = keras.layers.Conv1D(
                args.conv_filters, 5, strides=args.stride, padding="same", activation="relu", name="conv"
            )(x)
            x = keras.layers.LayerNormalization(name="conv_norm")(x)
        elif args.stride > 1:
            x = keras.layers.AveragePooling1D(args.stride, padding="same", name="downsample")(x)
        mask = FrameMask(args.stride, name="frame_mask")(x, frames_in)
        x = keras.layers.Dropout(args.dropout, name="input_dropout")(x)
        x = RecurrentStack(
            args.cell, args.units, num_layers=args.layers, bidirectional=args.bidirectional,
            recurrent_dropout=args.recurrent_dropout, name="recurrent",
        )(x, mask=mask)  # fmt: skip
        x = keras.layers.Dropout(args.dropout, name="output_dropout")(x)
        x = keras.layers.Dense(CLASSES, dtype="float32", name="frame_logits")(x)
        logits = DropMask(name="logits")(x)
        return keras.Model({"features": features_in, "frames": frames_in}, logits, name="recognizer")

    def compile_arguments(self, args, data, model):
        return {"loss": CTCLoss()}

    # Metrics -----------------------------------------------------------------------------
    def decode(self, model, data, split, beam_width=0):
        """(logits per utterance cut to its output frames, decoded digit lists)."""
        utterances = data.utterances[split]
        rows, decoded = [None] * len(utterances), [None] * len(utterances)
        for batch in data.batches(split):
            frames = batch["frames"].numpy()
            logits = model.predict_on_batch({"features": batch["features"], "frames": frames})
            lengths = data.output_frames(frames)
            labels = (
                beam_decode(logits, lengths, beam_width)
                if beam_width
                else [greedy_decode(row, n) for row, n in zip(logits, lengths)]
            )
            for row, index in enumerate(batch["index"].numpy()):
                rows[index] = np.asarray(logits[row, : lengths[row]])
                decoded[index] = [label - 1 for label in labels[row]]
        return rows, decoded

    def evaluate(self, model, data, split):
        _, decoded = self.decode(model, data, split, beam_width=data.beam_width)
        return speech_metrics([u.digits for u in data.utterances[split]], decoded)

    def reports(self, model, data, split):
        logits, decoded = self.decode(model, data, split, beam_width=data.beam_width)
        references = [u.digits for u in data.utterances[split]]
        lines = [f"{'reference':16s} {'decoded':16s} speaker"]
        for reference, hypothesis, utterance in list(zip(references, decoded, data.utterances[split]))[:100]:
            mark = "" if list(reference) == hypothesis else "  <- error"
            lines.append(
                f"{''.join(map(str, reference)):16s} {''.join(map(str, hypothesis)):16s} {utterance.speaker}{mark}"
            )
        probabilities = [
            np.exp(r - r.max(-1, keepdims=True)) / np.exp(r - r.max(-1, keepdims=True)).sum(-1, keepdims=True)
            for r in logits[:4]
        ]
        figure = posteriorgram_figure(list(zip(probabilities, references[:4], decoded[:4])))
        return {f"decoded_{split}.txt": "\n".join(lines) + "\n", f"posteriorgram_{split}.png": figure}

    # Serving -----------------------------------------------------------------------------
    def serving_model(self, model, data, args):
        """Features and frame counts -> per output frame, log-probabilities of blank and digits."""
        log_probabilities = keras.layers.Activation("log_softmax", name="log_probabilities")(model.output)
        return keras.Model(model.inputs, log_probabilities, name="speech_ctc")

    def model_metadata(self, serving_model):
        settings = Parts(serving_model).settings.values
        return {**settings, "classes": ["blank"] + [str(d) for d in range(10)]}

    def transcribe(self, serving_model, paths, beam_width=0):
        """Digits of each audio file (any sample rate or channel count), read by `file_features`."""
        settings = Parts(serving_model).settings.values
        config, stride = FeatureConfig(**settings["features"]), settings["stride"]
        values = [file_features(path, config) for path in paths]
        frames = np.array([len(v) for v in values])
        padded = np.zeros((len(values), frames.max(), config.dims), dtype="float32")
        for i, v in enumerate(values):
            padded[i, : len(v)] = v
        log_probabilities = serving_model.predict_on_batch({"features": padded, "frames": frames})
        lengths = -(-frames // stride)
        if beam_width:
            labels = beam_decode(log_probabilities, lengths, beam_width)
        else:
            labels = [greedy_decode(row, n) for row, n in zip(log_probabilities, lengths)]
        return [[label - 1 for label in row] for row in labels]

    def predict(self, serving_model, inputs, args):
        digits = self.transcribe(serving_model, inputs, args.beam_width)
        return [{"file": path, "digits": [int(d) for d in row]} for path, row in zip(inputs, digits)]

    def show(self, record, args):
        print(f"{record['file']}: {' '.join(map(str, record['digits'])) or '(no digits)'}")

    def evaluate_saved(self, serving_model, args):
        settings = Parts(serving_model).settings.values
        config, args.stride = FeatureConfig(**settings["features"]), settings["stride"]
        args.fold = None
        recordings = self.split_recordings(load_recordings(args.dataset, args.data_dir), args)[args.split]
        skipped = Counter()
        count = {"train": 4000, "valid": 500, "test": 1000}[args.split] if args.utterances is None else args.utterances
        utterances, values = self.prepare_split(recordings, args.split, count, config, args, skipped)
        data = SpeechData({args.split: utterances}, {args.split: values}, config, args.stride, 32, 0, args.beam_width)
        return self.evaluate(serving_model, data, args.split)

    def add_evaluate_arguments(self, parser):
        parser.add_argument(
            "--beam-width",
            type=runner.non_negative_int,
            default=0,
            help="beam search width; 0: greedy (default: %(default)s)",
        )
        parser.add_argument(
            "--utterances",
            type=runner.positive_int,
            help="utterances of the split, as in train (default: as train's default)",
        )
        parser.add_argument(
            "--max-digits", type=runner.positive_int, default=7, help="as in train (default: %(default)s)"
        )
        parser.add_argument("--data-seed", type=runner.seed, default=0, help="as in train (default: %(default)s)")
        parser.add_argument("--test-speakers", help="as in train")


APP = SpeechCTC()

if __name__ == "__main__":
    sys.exit(runner.main(APP))
