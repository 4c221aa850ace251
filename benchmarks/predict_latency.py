"""Single-sentence predict latency of a saved slot-filling model.

    python -m benchmarks.predict_latency --model runs:/RUN_ID/model
    python -m benchmarks.predict_latency                 # a fresh default model, saved and reloaded

Measures what a user waits for:
  - `load`: loading the saved model (.keras file or MLflow model);
  - `first call`: the first prediction (graph building included);
  - `eager call`: later predictions of one sentence, the model called eagerly
    (`model(inputs)`; median and IQR over `--repeats` / 10 calls);
  - `predict_on_batch`: the same through Keras' compiled predict function, as the
    apps' `predict` runs it (first call: tracing included);
  - `CLI`: one `python -m apps.slot_filling predict --model ... SENTENCE` process,
    wall clock, imports included.
Without `--model`, the app's default model is built on ATIS (untrained: the
latency does not depend on the weights' values), saved as .keras and reloaded.
"""

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from benchmarks.common import app_train_arguments, device, print_results, time_calls  # noqa: E402

SENTENCE = "i want to leave boston and arrive in denver on november second"
REPOSITORY = Path(__file__).resolve().parent.parent


def default_model(folder):
    """The slot-filling app's default serving model on ATIS, saved in `folder`; its path."""
    import keras

    from apps.slot_filling import SlotFilling

    app = SlotFilling()
    args = app_train_arguments(app)
    data = app.load_data(args)
    serving = app.serving_model(app.build_model(args, data), data, args)
    path = Path(folder) / "slot_filling.keras"
    keras.saving.save_model(serving, path)
    return str(path)


def measure(model_location, sentence, repeats, tracking_uri=None):
    from apps.saved import load_model

    results = []
    start = time.perf_counter()
    model = load_model(model_location, tracking_uri)
    results.append({"measurement": "load", "ms": 1000 * (time.perf_counter() - start), "iqr_ms": 0.0})

    text = {"text": tf.constant([sentence])}
    start = time.perf_counter()
    model(text).numpy()
    results.append({"measurement": "first call", "ms": 1000 * (time.perf_counter() - start), "iqr_ms": 0.0})
    # Eager calls are slow (seconds): a few suffice.
    results.append({"measurement": "eager call", **time_calls(lambda: model(text).numpy(), max(3, repeats // 10))})

    # What the apps' `predict` runs: Keras' compiled predict function.
    start = time.perf_counter()
    model.predict_on_batch(text)
    results.append(
        {"measurement": "predict_on_batch, first", "ms": 1000 * (time.perf_counter() - start), "iqr_ms": 0.0}
    )
    results.append({"measurement": "predict_on_batch", **time_calls(lambda: model.predict_on_batch(text), repeats)})

    command = [sys.executable, "-m", "apps.slot_filling", "predict", "--model", model_location, sentence]
    if tracking_uri:
        command += ["--tracking-uri", tracking_uri]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPOSITORY, check=True, capture_output=True)
    results.append({"measurement": "CLI process", "ms": 1000 * (time.perf_counter() - start), "iqr_ms": 0.0})
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .keras file, MLflow model folder or URI (default: a fresh default model)")
    parser.add_argument("--tracking-uri", help="MLflow store of a runs:/ or models:/ URI")
    parser.add_argument("--sentence", default=SENTENCE, help="the sentence predicted (default: the issue's example)")
    parser.add_argument("--repeats", type=int, default=50, help="measured calls (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per measurement")
    options = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(sys.stderr):
        location = options.model or default_model(folder)
        results = measure(location, options.sentence, options.repeats, options.tracking_uri)
    for result in results:
        result.update(
            model=options.model or "default (untrained)", words=len(options.sentence.split()), device=device()
        )
    print_results(
        results,
        {"measurement": "measurement", "ms (median)": "ms", "IQR ms": "iqr_ms"},
        options.json,
        heading=f"slot-filling predict latency, {results[0]['words']} words, model {results[0]['model']}; {device()}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
