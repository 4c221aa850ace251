"""What the benchmarks share: timing statistics, the machine's name, table or JSON output."""

import json
import time

import numpy as np


def timings(times):
    """Median and interquartile range, in milliseconds, of durations in seconds."""
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return {"ms": 1000 * float(median), "iqr_ms": 1000 * float(q3 - q1)}


def time_calls(function, repeats, warmup=1):
    """`timings` of `repeats` calls of `function()` after `warmup` unmeasured ones."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return timings(times)


def device():
    """The machine the figures come from, in words: the `device` tag of MLflow runs.

    Under Keras' JAX or PyTorch backend (the cell benchmark runs there too, e.g. on a
    GPU machine without TensorFlow) the backend names its own device.
    """
    import os

    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        if gpus:
            return "GPU: " + ", ".join(d.device_kind for d in gpus)
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return "GPU: " + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    else:
        from apps.tracking import device_description

        return device_description()
    return f"CPU ({os.cpu_count()} cores)"


def print_results(results, columns, as_json, heading=""):
    """`results` (dicts) as a JSON list, or as a Markdown table of `columns`.

    `columns` maps a header to a key of the result dicts or to a function of one.
    """
    if as_json:
        print(json.dumps(results, indent=1))
        return
    if heading:
        print(f"\n{heading}\n")
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("---" for _ in columns) + " |")
    for result in results:
        cells = []
        for source in columns.values():
            value = source(result) if callable(source) else result.get(source, "")
            cells.append(f"{value:,.1f}" if isinstance(value, float) else str(value))
        print("| " + " | ".join(cells) + " |")


def app_train_arguments(app, argv=()):
    """The `train` arguments of `app` (its defaults, changed by `argv`), as its CLI parses them."""
    from apps.runner import build_parser

    return build_parser(app).parse_args(["train", *argv])


# Result sweeps: each (configuration, seed) one `python -m apps.APP train` run, named CONFIG-sSEED --------


def finished_runs(experiment):
    """{run name: run} of the FINISHED runs of `experiment` (a sweep skips those)."""
    import mlflow

    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    return {r.info.run_name: r for r in runs if r.info.status == "FINISHED"}


def train_run(app, name, arguments, seed, experiment, tracking_uri=None, extra=()):
    """`python -m apps.APP train ARGUMENTS --seed SEED` as run CONFIG-sSEED of `experiment`, as a user runs it."""
    import subprocess
    import sys
    from pathlib import Path

    command = [
        sys.executable, "-m", f"apps.{app}", "train", *arguments, *extra, "--seed", str(seed),
        "--experiment", experiment, "--run-name", f"{name}-s{seed}", "--verbose", "2",
    ]  # fmt: skip
    if tracking_uri:
        command += ["--tracking-uri", tracking_uri]
    print(f"$ {' '.join(command[1:])}", flush=True)
    started = time.time()
    result = subprocess.run(command, cwd=Path(__file__).resolve().parent.parent)
    print(f"  {name} seed {seed}: exit {result.returncode} after {time.time() - started:.0f} s", flush=True)


def sweep_options(description, experiment, seeds, choices, argv=None):
    """The flags of a results sweep: --experiment, --tracking-uri (also made MLflow's), --seeds,
    --only (of `choices`), --table-only, and further train flags after --."""
    import argparse
    import os

    import mlflow

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default=experiment)
    parser.add_argument("--tracking-uri", help="MLflow store (default: MLflow's, ./mlflow.db)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(seeds))
    parser.add_argument("--only", nargs="+", choices=sorted(choices), help="these only")
    parser.add_argument("--table-only", action="store_true", help="train nothing, print the table")
    parser.add_argument("extra", nargs="*", help="further train flags for every run, after --")
    options = parser.parse_args(argv)
    if options.tracking_uri:
        mlflow.set_tracking_uri(options.tracking_uri)
        os.environ["MLFLOW_TRACKING_URI"] = options.tracking_uri
    if not options.table_only:
        mlflow.set_experiment(options.experiment)
    return options


def sweep(app, configurations, options, base=()):
    """Trains each (configuration, seed) that has no FINISHED run yet (unless --table-only)."""
    if options.table_only:
        return
    for seed in options.seeds:
        for name, arguments in configurations.items():
            if f"{name}-s{seed}" not in finished_runs(options.experiment):
                train_run(app, name, [*base, *arguments], seed, options.experiment, options.tracking_uri, options.extra)


def write_atis_subset(source, folder, sentences=(600, 100, 100)):
    """The first train, valid and test sentences of ATIS (in `source`/atis) as a data folder
    (`--data-dir FOLDER`); returns `folder`."""
    from pathlib import Path

    source, folder = Path(source), Path(folder)
    for split, count in zip(("train", "valid", "test"), sentences):
        (folder / "atis" / split).mkdir(parents=True, exist_ok=True)
        for name in ("seq.in", "seq.out", "label"):
            lines = (source / "atis" / split / name).read_text().splitlines()[:count]
            (folder / "atis" / split / name).write_text("\n".join(lines) + "\n")
    return folder
