"""`tf.data` throughput of the text and audio pipelines against the model's consumption.

    python -m benchmarks.pipelines                       # ATIS slot filling and FSDD speech, app defaults
    python -m benchmarks.pipelines --apps speech_ctc --speech-args --train-utterances 500

For each app, on its training split with its default model:
  - `prepare`: the app's `load_data` (reading, tokenizing, vocabularies; for
    speech the librosa features, computed once and then read from the feature cache);
  - `pipeline, 1st epoch`: one pass over `fit_dataset(data, "train")` (fills tf.data's cache);
  - `pipeline`: a later pass, what every further epoch costs;
  - `model`: `train_on_batch` over the same batches, already in memory, after
    one warm-up call per batch shape (so compilation is excluded).
Rates are examples per second; `pipeline / model` is how many times faster the
pipeline delivers than the training step consumes (goal ≥ 10).
"""

import argparse
import contextlib
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.common import app_train_arguments, device, print_results  # noqa: E402

APPS = {"slot_filling": "text (ATIS)", "speech_ctc": "audio (FSDD)"}


def batch_size_of(inputs):
    first = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
    return int(first.shape[0])


def epoch_rate(dataset):
    """(examples/s, examples) of one pass over `dataset`."""
    start = time.perf_counter()
    examples = sum(batch_size_of(element[0]) for element in dataset)
    return examples / (time.perf_counter() - start), examples


def model_rate(model, batches):
    """Examples/s of `train_on_batch` over `batches`, compilation of each batch shape excluded."""
    seen = set()
    for element in batches:  # (inputs, targets) or (inputs, targets, sample weights)
        inputs = element[0]
        shapes = tuple(tuple(v.shape) for v in (inputs.values() if isinstance(inputs, dict) else [inputs]))
        if shapes not in seen:
            seen.add(shapes)
            model.train_on_batch(*element)
    start = time.perf_counter()
    for element in batches:
        model.train_on_batch(*element)
    return sum(batch_size_of(element[0]) for element in batches) / (time.perf_counter() - start), len(seen)


def measure(app_name, argv):
    import importlib

    from apps import training_loop

    app = importlib.import_module(f"apps.{app_name}").APP
    args = app_train_arguments(app, argv)
    start = time.perf_counter()
    data = app.load_data(args)
    prepare = time.perf_counter() - start
    dataset = app.fit_dataset(data, "train")
    first, examples = epoch_rate(dataset)
    later, _ = epoch_rate(dataset)
    model = app.build_model(args, data)
    training_loop.compile_model(app, model, args, data)
    consumed, shapes = model_rate(model, list(dataset))
    return {
        "app": app_name,
        "pipeline": APPS.get(app_name, app_name),
        "cell": args.cell,
        "xla": training_loop.xla_choice(args.cell, args.xla)[0],
        "examples": examples,
        "batch_size": args.batch_size,
        "batch_shapes": shapes,
        "prepare_s": prepare,
        "first_epoch_examples_per_s": first,
        "pipeline_examples_per_s": later,
        "model_examples_per_s": consumed,
        "pipeline_over_model": later / consumed,
        "device": device(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", nargs="+", choices=sorted(APPS), default=list(APPS))
    parser.add_argument(
        "--slot-filling-args", nargs=argparse.REMAINDER, default=[], help="train flags for slot_filling (last)"
    )
    parser.add_argument("--speech-args", nargs=argparse.REMAINDER, default=[], help="train flags for speech_ctc (last)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per app")
    options = parser.parse_args(argv)
    extra = {"slot_filling": options.slot_filling_args, "speech_ctc": options.speech_args}
    with contextlib.redirect_stdout(sys.stderr):  # the apps' progress lines: stdout is the result
        results = [measure(name, extra[name]) for name in options.apps]
    print_results(
        results,
        {
            "pipeline": "pipeline",
            "model": lambda r: f"{r['cell']}, XLA {'on' if r['xla'] else 'off'}",
            "examples": "examples",
            "prepare s": "prepare_s",
            "pipeline, 1st epoch (ex/s)": "first_epoch_examples_per_s",
            "pipeline (ex/s)": "pipeline_examples_per_s",
            "model (ex/s)": "model_examples_per_s",
            "pipeline / model": "pipeline_over_model",
        },
        options.json,
        heading=f"tf.data pipelines against training consumption; {device()}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
