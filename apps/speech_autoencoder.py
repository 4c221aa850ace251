"""Audio Word2Vec (Chung et al. 2016): a spoken word's MFCC sequence in, one vector out, learnt
without labels by rebuilding the sequence from the vector; spoken content is then searched by example.

    python -m apps.speech_autoencoder train --test-speakers theo
    python -m apps.speech_autoencoder train --cv 5                  # leave one speaker out, each in turn
    python -m apps.speech_autoencoder evaluate --model runs:/RUN_ID/model --test-speakers theo
    python -m apps.speech_autoencoder search --model runs:/RUN_ID/model query.wav --in recordings/
    python -m apps.speech_autoencoder encode --model runs:/RUN_ID/model recordings/ --output codes.npy

Data: FSDD's recordings (or `folder:PATH` of DIGIT_SPEAKER_TAKE.wav files), 13 MFCCs every 10 ms
(librosa), one recording an example. The speakers of --test-speakers (in `--cv`, one speaker a
fold) are held out: their recordings are the queries, the other speakers' the collection, and a
hit is a recording of the same digit. The auto-encoder (`apps.autoencoder`) rebuilds the MFCC
sequence from the code (masked mean squared error; `--input-noise` makes it a denoising one);
the digit labels are used only to score. Each evaluation also scores the baselines on the same
queries: the averaged-MFCC vector and DTW over the MFCC sequences, with each method's time per query.
"""

import sys
from pathlib import Path

import keras
import numpy as np

from apps import autoencoder, parts, runner
from apps.speech_autoencoder_data import (
    CONFIG,
    FEATURES,
    SpokenWords,
    encode_arrays,
    file_features,
    fit_scale,
    mean_vectors,
    pad_frames,
    query_by_example,
    recording_features,
    standardize,
)
from apps.speech_ctc_data import speaker_split
from layers import Metadata, RecurrentStack
from pipelines.audio import AudioError, load_recordings

OUTPUT = "frames"


class SpeechAutoencoder(runner.App):
    name = "speech_autoencoder"
    input_kind = "audio"
    description = __doc__
    datasets = ("fsdd",)
    dataset_help = "fsdd, or folder:PATH (recordings named DIGIT_SPEAKER_TAKE.wav)"
    monitor = "val_code_map"
    curve_metrics = ("val_mse",)
    supports_cv = True
    defaults = {"cell": "lstm", "bidirectional": True, "units": 128, "dropout": 0.0, "epochs": 40, "patience": 5}
    data_arguments = runner.App.data_arguments + ("test_speakers", "fold", "cv", "dtw_queries")

    @property
    def search_space(self):
        return {**super().search_space, "code_size": {"choice": [64, 100, 128, 256]}}

    def add_arguments(self, parser):
        parser.add_argument(
            "--test-speakers", help="comma-separated speakers held out as queries (default: FSDD's split by take)"
        )
        parser.add_argument(
            "--input-noise", type=runner.non_negative_number, default=0.0,
            help="denoising: Gaussian noise of this deviation added to the encoder's (normalized) input "
            "in training (default: %(default)s)",
        )  # fmt: skip
        self.add_dtw_argument(parser)
        autoencoder.add_arguments(parser, code_size=128)

    @staticmethod
    def add_dtw_argument(parser):
        parser.add_argument(
            "--dtw-queries", type=runner.non_negative_int, default=100,
            help="queries the DTW baseline is scored on at the end (a seeded subset: DTW is slow); "
            "0: no DTW (default: %(default)s)",
        )  # fmt: skip

    def add_evaluate_arguments(self, parser):
        parser.add_argument("--test-speakers", help="comma-separated speakers held out as queries")
        self.add_dtw_argument(parser)
        parser.add_argument("--seed", type=runner.seed, default=0, help="draws DTW's queries (default: %(default)s)")

    def commands(self):
        return {
            "search": ("rank a folder's recordings by their similarity to a spoken query", add_search, search),
            "encode": ("write the code of each recording (files or folders) as .npy or .csv", add_encode, encode),
        }

    # Data --------------------------------------------------------------------------------
    def load_data(self, args, scale=None):
        """The recordings and their MFCCs, standardized by `scale` (a saved model's) or by the
        training frames' own."""
        splits = speaker_split(load_recordings(args.dataset, args.data_dir), args)
        recordings, arrays = {}, {}
        for split, found in splits.items():
            recordings[split], arrays[split], errors = recording_features(found)
            for error in errors:
                print(f"skipped: {error}", file=sys.stderr)
        scale = scale or fit_scale(arrays["train"])
        arrays = {split: standardize(found, scale) for split, found in arrays.items()}
        print(
            "recordings: " + ", ".join(f"{s} {len(r)}" for s, r in recordings.items())
            + f"; queries: {', '.join(sorted({r.speaker for r in recordings['test']}))}"
        )  # fmt: skip
        return SpokenWords(recordings, arrays, args.batch_size, args.seed, args.dtw_queries, scale)

    def fit_dataset(self, data, split):
        return data.batches(split, shuffle=split == "train")

    # Model -------------------------------------------------------------------------------
    def build_model(self, args, data):
        frames = keras.Input((None, CONFIG.dims), name=FEATURES)
        x = keras.layers.Masking(0.0, name="masking")(frames)
        mask = keras.ops.any(keras.ops.not_equal(frames, 0.0), axis=-1)
        if args.input_noise:
            x = keras.layers.GaussianNoise(args.input_noise, seed=args.seed, name="input_noise")(x)
        memory = RecurrentStack(
            args.cell, args.units, num_layers=args.layers, bidirectional=args.bidirectional, dropout=args.dropout,
            recurrent_dropout=args.recurrent_dropout, name="encoder",
        )(x)  # fmt: skip
        # The decoder reads only which frames are real (and the code): nothing of the sequence itself.
        steps = keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
        outputs = autoencoder.decode(memory, mask, steps, args)
        rebuilt = keras.layers.Dense(CONFIG.dims, dtype="float32", name=OUTPUT)(outputs)
        return keras.Model({FEATURES: frames}, rebuilt, name="speech_autoencoder")

    def compile_arguments(self, args, data, model):
        return {"loss": keras.losses.MeanSquaredError(), "weighted_metrics": []}

    # Metrics -----------------------------------------------------------------------------
    def evaluate(self, model, data, split):
        recordings, arrays = data.collection(split)
        queries = data.recordings[split]
        metrics = query_by_example(
            autoencoder.encoder_model(model, FEATURES), data.features[split], arrays, [r.digit for r in queries],
            [r.digit for r in recordings], data.dtw_queries if split == "test" else 0, data.seed,
        )  # fmt: skip
        metrics["mse"] = reconstruction_error(model, data.features[split])
        return metrics

    def reports(self, model, data, split):
        encoder = autoencoder.encoder_model(model, FEATURES)
        recordings = data.recordings[split]
        vectors = encode_arrays(encoder, data.features[split])
        groups = {"digit": [r.digit for r in recordings], "speaker": [r.speaker for r in recordings]}
        means = mean_vectors(data.features[split])
        return {
            f"code_map_{split}.png": autoencoder.map_figure(vectors, groups, f"codes of the {split} recordings"),
            f"mean_mfcc_map_{split}.png": autoencoder.map_figure(means, groups, "averaged MFCCs"),
            f"reconstruction_{split}.png": reconstruction_figure(model, data.features[split][:4], recordings[:4]),
            f"codes_{split}.tsv": autoencoder.codes_table([Path(r.path).name for r in recordings], vectors),
        }

    # Serving -----------------------------------------------------------------------------
    def serving_model(self, model, data, args):
        settings = {
            "features": {"kind": CONFIG.kind, "n_mfcc": CONFIG.n_mfcc, "deltas": CONFIG.deltas},
            "mean": [float(v) for v in data.scale[0]],
            "deviation": [float(v) for v in data.scale[1]],
        }
        rebuilt = Metadata(settings, name=parts.SETTINGS)(model.output)
        return keras.Model(model.input, rebuilt, name="speech_autoencoder")

    def evaluate_saved(self, serving_model, args):
        args.fold, args.cv, args.batch_size = None, None, 64
        data = self.load_data(args, scale_of(serving_model))
        return self.evaluate(serving_model, data, args.split)

    def predict(self, serving_model, inputs, args):
        """Each recording's reconstruction error and code."""
        encoder = autoencoder.encoder_model(serving_model, FEATURES)
        results = []
        for path in inputs:
            values = checked_features(path, scale_of(serving_model))
            code = encode_arrays(encoder, [values])[0]
            results.append({"file": path, "frames": len(values), "mse": reconstruction_error(serving_model, [values]),
                            "code": [round(float(v), 6) for v in code]})  # fmt: skip
        return results

    def show(self, record, args):
        code = " ".join(f"{v:.2f}" for v in record["code"][:8])
        print(f"{record['file']}: {record['frames']} frames, reconstruction MSE {record['mse']:.4f}, code [{code} ...]")


def reconstruction_error(model, arrays):
    """Mean squared error per real frame value of the rebuilt MFCC sequences."""
    total, count = 0.0, 0
    for start in range(0, len(arrays), 128):
        x = pad_frames(arrays[start : start + 128])
        rebuilt = keras.ops.convert_to_numpy(model({FEATURES: x}, training=False))
        real = np.any(x != 0, axis=-1)
        total += float(((rebuilt - x) ** 2)[real].sum())
        count += int(real.sum()) * x.shape[-1]
    return total / max(count, 1)


def reconstruction_figure(model, arrays, recordings):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(arrays), 2, figsize=(10, 2.2 * len(arrays)), squeeze=False)
    for row, (values, recording) in enumerate(zip(arrays, recordings)):
        rebuilt = keras.ops.convert_to_numpy(model({FEATURES: values[None]}, training=False))[0]
        for axis, image, what in ((axes[row, 0], values, "MFCCs"), (axes[row, 1], rebuilt, "rebuilt from the code")):
            axis.imshow(image.T, aspect="auto", origin="lower", cmap="magma")
            axis.set_title(f"{Path(recording.path).name}: {what}", fontsize=9)
    figure.tight_layout()
    return figure


def scale_of(serving_model):
    """The (mean, deviation) a saved model standardizes its MFCCs with."""
    settings = serving_model.get_layer(parts.SETTINGS).values
    return np.asarray(settings["mean"], "float32"), np.asarray(settings["deviation"], "float32")


def checked_features(path, scale):
    """A file's standardized MFCCs, or a clear error naming it."""
    try:
        return file_features(path, scale)
    except AudioError as error:
        raise runner.UserError(str(error)) from None


def audio_files(locations):
    """The audio files of files and folders (folders: every .wav under them, sorted)."""
    found = []
    for location in locations:
        path = Path(location)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.wav") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise runner.UserError(f"{location}: no such file or folder")
    if not found:
        raise runner.UserError(f"{', '.join(locations)}: no .wav files")
    return found


def add_search(parser):
    parser.add_argument("query", help="a recording of the word to search for (.wav)")
    parser.add_argument("--in", dest="folder", required=True, help="the folder of recordings to search (.wav files)")
    parser.add_argument("--count", type=runner.positive_int, default=10, help="results shown (default: %(default)s)")


def search(serving_model, args):
    encoder = autoencoder.encoder_model(serving_model, FEATURES)
    scale = scale_of(serving_model)
    query = encode_arrays(encoder, [checked_features(args.query, scale)])
    paths, arrays = [], []
    for path in audio_files([args.folder]):
        try:
            arrays.append(file_features(path, scale))
            paths.append(path)
        except AudioError as error:
            print(f"skipped: {error}", file=sys.stderr)
    if not arrays:
        raise runner.UserError(f"{args.folder}: no readable recordings")
    scores = autoencoder.cosine_similarities(query, encode_arrays(encoder, arrays))[0]
    ranked = [(str(paths[i]), float(scores[i])) for i in np.argsort(-scores, kind="stable")[: args.count]]
    for path, score in ranked:
        print(f"{score:.3f}  {path}")
    return ranked


def add_encode(parser):
    parser.add_argument("recordings", nargs="+", help="audio files or folders of .wav files")
    autoencoder.add_output_argument(parser)


def encode(serving_model, args):
    output = autoencoder.checked_output(args.output)
    paths = audio_files(args.recordings)
    scale = scale_of(serving_model)
    encoder = autoencoder.encoder_model(serving_model, FEATURES)
    vectors = encode_arrays(encoder, [checked_features(p, scale) for p in paths])
    autoencoder.write_codes(vectors, output)
    print("rows in this order:\n" + "\n".join(str(p) for p in paths))
    return vectors


APP = SpeechAutoencoder()

if __name__ == "__main__":
    sys.exit(runner.main(APP))
