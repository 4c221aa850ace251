"""The runner every app shares: CLI, training loop, checkpoints and resume, MLflow tracking.

An app says what data, what head and what metric by subclassing `App`; the
runner does the rest:

    python -m apps.APP train    [--cell KIND --bidirectional --layers N ...]
    python -m apps.APP evaluate --model PATH_OR_URI [--split test]
    python -m apps.APP predict  --model PATH_OR_URI "some input" ...

Each `train` is one MLflow run: every CLI parameter as a param, per-epoch
metrics, final test metrics, tags (app, dataset, cell, device, library
versions, git commit), a learning-curve plot, the app's reports, and the model
logged with `mlflow.keras.log_model` so it predicts from raw input after reload.
Checkpoints go to `--checkpoint-dir/RUN_ID`; an interrupted or failed training
continues with `train --resume RUN_ID`.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import mlflow  # noqa: E402

from apps import tracking  # noqa: E402
from apps.callbacks import BestCheckpoint, EpochEvaluation, MlflowEpochLogger  # noqa: E402
from layers import CELL_KINDS  # noqa: E402
from pipelines.sources import (  # noqa: E402
    DATA_ENV,
    ChecksumError,
    DataFormatError,
    DataNotFoundError,
)

# Resuming a run replays its saved arguments; these may differ in the new session.
RESUME_OVERRIDES = ("resume", "tracking_uri", "checkpoint_dir", "verbose", "data_dir")


class App:
    """What an app defines. The runner calls these; everything else is shared.

    Class attributes:
        name: the app's name (MLflow experiment by default, and the `app` tag).
        description: one paragraph for `--help`.
        datasets: the `--dataset` choices, the first being the default.
        monitor: the validation metric that selects the best epoch (e.g. "val_slot_f1").
        monitor_mode: "max" or "min".
        defaults: default values of the common training flags (cell, units, ...).
    """

    name = None
    description = ""
    datasets = ()
    monitor = None
    monitor_mode = "max"
    defaults = {}

    def add_arguments(self, parser):
        """Adds the app's own `train` flags (model and data options)."""

    def load_data(self, args):
        """Reads and encodes the data set; returns an object the other methods understand."""
        raise NotImplementedError

    def build_model(self, args, data):
        """The training model (uncompiled)."""
        raise NotImplementedError

    def compile_arguments(self, args, data):
        """`loss`, `loss_weights`, `metrics` for `Model.compile`."""
        raise NotImplementedError

    def fit_dataset(self, data, split):
        """The `tf.data` pipeline `Model.fit` reads for `split` ("train" or "valid")."""
        raise NotImplementedError

    def evaluate(self, model, data, split):
        """The app's metrics (fractions 0..1) of the training model on `split`."""
        raise NotImplementedError

    def reports(self, model, data, split):
        """{file name: text} artifacts describing the model on `split` (e.g. per-class scores)."""
        return {}

    def save_assets(self, data, folder):
        """Writes what reproduces the preprocessing (vocabularies, ...) into `folder`."""

    def serving_model(self, model, data, args):
        """A model that takes raw input (e.g. strings) and returns readable predictions."""
        raise NotImplementedError

    def signature(self, serving_model):
        """The MLflow model signature of `serving_model`."""
        raise NotImplementedError

    def evaluate_saved(self, serving_model, args):
        """Metrics of a saved serving model on `args.split` of `args.dataset`."""
        raise NotImplementedError

    def predict(self, serving_model, inputs, args):
        """Prints the predictions for `inputs` (raw strings or paths)."""
        raise NotImplementedError

    def add_predict_arguments(self, parser):
        """Adds the app's own `predict` flags."""


# Command line ------------------------------------------------------------------------------


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _fraction(text):
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def add_store_arguments(parser):
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's local "
        "default, sqlite:///mlflow.db in the current folder)",
    )


def add_data_arguments(parser, app):
    parser.add_argument(
        "--dataset", choices=app.datasets, default=app.datasets[0], help="data set (default: %(default)s)"
    )
    parser.add_argument(
        "--data-dir",
        help="folder holding the data sets (default: $RNN_SUITE_DATA, else the user cache, "
        "where missing files are downloaded)",
    )


def build_parser(app):
    d = {
        "cell": "lstm",
        "bidirectional": False,
        "layers": 1,
        "units": 128,
        "dropout": 0.0,
        "recurrent_dropout": 0.0,
        "epochs": 30,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "clipnorm": 5.0,
        "patience": 5,
        **app.defaults,
    }
    parser = argparse.ArgumentParser(
        prog=f"python -m apps.{app.name}",
        description=app.description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'python -m apps.%s COMMAND --help' for a command's options." % app.name,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a model, tracked as one MLflow run",
        description="Train a model on the training split, select the best epoch on the "
        "validation split, report on the test split. Tracked as one MLflow run; "
        "checkpoints allow an interrupted run to resume.",
    )
    add_data_arguments(train, app)
    model = train.add_argument_group("model")
    model.add_argument("--cell", choices=CELL_KINDS, default=d["cell"], help="recurrent cell (default: %(default)s)")
    model.add_argument(
        "--bidirectional",
        action=argparse.BooleanOptionalAction,
        default=d["bidirectional"],
        help="run each recurrent layer in both directions (default: %(default)s)",
    )
    model.add_argument("--layers", type=_positive_int, default=d["layers"], help="stacked recurrent layers (default: %(default)s)")
    model.add_argument("--units", type=_positive_int, default=d["units"], help="units per recurrent layer (default: %(default)s)")
    model.add_argument("--dropout", type=_fraction, default=d["dropout"], help="dropout of the recurrent inputs (default: %(default)s)")
    model.add_argument(
        "--recurrent-dropout",
        type=_fraction,
        default=d["recurrent_dropout"],
        help="dropout of the recurrent state; > 0 turns cuDNN off for Keras' cells (default: %(default)s)",
    )
    app.add_arguments(model)
    fit = train.add_argument_group("training")
    fit.add_argument("--epochs", type=_positive_int, default=d["epochs"], help="maximum epochs (default: %(default)s)")
    fit.add_argument("--batch-size", type=_positive_int, default=d["batch_size"], help="(default: %(default)s)")
    fit.add_argument("--learning-rate", type=float, default=d["learning_rate"], help="Adam's learning rate (default: %(default)s)")
    fit.add_argument(
        "--clipnorm", type=float, default=d["clipnorm"], help="clip each gradient's norm to this; 0 turns clipping off (default: %(default)s)"
    )
    fit.add_argument(
        "--patience", type=_positive_int, default=d["patience"], help=f"stop after this many epochs without a better {app.monitor} (default: %(default)s)"
    )
    fit.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    fit.add_argument("--mixed-precision", action="store_true", help="compute in float16 (for GPUs with tensor cores)")
    fit.add_argument(
        "--xla",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="compile the training step with XLA: each new batch shape costs a compilation "
        "(seconds), so it pays off only for long trainings (default: %(default)s)",
    )
    fit.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None, help="Keras fit verbosity (default: 1 on a terminal, else 2)")
    track = train.add_argument_group("tracking")
    add_store_arguments(track)
    track.add_argument("--experiment", default=app.name, help="MLflow experiment (default: %(default)s)")
    track.add_argument("--run-name", help="MLflow run name (default: DATASET-CELL...)")
    track.add_argument("--register-model", metavar="NAME", help="also register the logged model under NAME")
    track.add_argument(
        "--checkpoint-dir", default="checkpoints", help="where each run keeps its checkpoints, in RUN_ID/ (default: %(default)s)"
    )
    track.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted training run from its checkpoint")

    evaluate = commands.add_parser(
        "evaluate",
        help="score a saved model on a data split",
        description="Score a saved model (a .keras file, an MLflow model folder or URI) on a split.",
    )
    evaluate.add_argument("--model", required=True, help="a .keras file, an MLflow model folder, or a URI (runs:/ID/model, models:/NAME/VERSION)")
    add_data_arguments(evaluate, app)
    evaluate.add_argument("--split", choices=("train", "valid", "test"), default="test", help="(default: %(default)s)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_store_arguments(evaluate)

    predict = commands.add_parser(
        "predict",
        help="predict from raw input with a saved model",
        description="Predict with a saved model (a .keras file, an MLflow model folder or URI).",
    )
    predict.add_argument("--model", required=True, help="a .keras file, an MLflow model folder, or a URI (runs:/ID/model, models:/NAME/VERSION)")
    predict.add_argument("inputs", nargs="*", help="inputs to predict; none: read one per line from standard input")
    app.add_predict_arguments(predict)
    add_store_arguments(predict)
    return parser


def main(app, argv=None):
    args = build_parser(app).parse_args(argv)
    try:
        if args.command == "train":
            train(app, args)
        elif args.command == "evaluate":
            evaluate(app, args)
        elif args.command == "predict":
            predict(app, args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (UserError, DataFormatError, DataNotFoundError, ChecksumError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


class UserError(Exception):
    """A problem the user can fix (bad argument, missing file): printed without a traceback."""


# Training ----------------------------------------------------------------------------------


def _restore_arguments(args):
    """For --resume: the interrupted run's own arguments, with this session's overrides."""
    saved_path = Path(args.checkpoint_dir) / args.resume / "args.json"
    if not saved_path.exists():
        raise UserError(
            f"--resume {args.resume}: no checkpoint at {saved_path}. Pass the run id printed when "
            f"the training stopped, and the same --checkpoint-dir."
        )
    saved = json.loads(saved_path.read_text())
    overrides = {name: getattr(args, name) for name in RESUME_OVERRIDES}
    restored = argparse.Namespace(**{**saved, **{k: v for k, v in overrides.items() if v is not None}})
    return restored


def _run_name(args):
    parts = [args.dataset, ("bi" if args.bidirectional else "") + args.cell]
    if args.layers > 1:
        parts.append(f"x{args.layers}")
    parts.append(f"s{args.seed}")
    return "-".join(parts)


def train(app, args):
    resuming = bool(args.resume)
    if resuming:
        args = _restore_arguments(args)
    tracking.configure(args.tracking_uri, args.experiment)
    if resuming:
        status = mlflow.get_run(args.resume).info.status
        if status == "FINISHED":
            raise UserError(f"run {args.resume} has already finished; nothing to resume")

    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy("mixed_float16" if args.mixed_precision else "float32")
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)

    run_name = args.run_name or _run_name(args)
    with mlflow.start_run(run_id=args.resume, run_name=None if resuming else run_name) as run:
        run_id = run.info.run_id
        checkpoint = Path(args.checkpoint_dir) / run_id
        print(f"MLflow run {run_id} ({run_name}) in {mlflow.get_tracking_uri()}", flush=True)
        try:
            _train_in_run(app, args, run_id, checkpoint, resuming, verbose)
        except BaseException as error:
            status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            mlflow.end_run(status=status)
            print(
                f"\ntraining stopped ({type(error).__name__}); run {run_id} is marked {status}.\n"
                f"Its checkpoint is in {checkpoint}. Continue it with:\n"
                f"  python -m apps.{app.name} train --resume {run_id}"
                + (f" --checkpoint-dir {args.checkpoint_dir}" if args.checkpoint_dir != "checkpoints" else "")
                + (f" --tracking-uri {args.tracking_uri}" if args.tracking_uri else ""),
                file=sys.stderr,
            )
            raise
    return run_id


def _train_in_run(app, args, run_id, checkpoint, resuming, verbose):
    checkpoint.mkdir(parents=True, exist_ok=True)
    xla = bool(args.xla)
    if not resuming:
        saved = {k: v for k, v in vars(args).items() if k != "command"}
        # Where the data came from, so that --resume finds it from any shell.
        saved["data_dir"] = args.data_dir or os.environ.get(DATA_ENV)
        (checkpoint / "args.json").write_text(json.dumps(saved, indent=1))
        mlflow.log_params({k: ("" if v is None else v) for k, v in saved.items()})
        mlflow.log_params({"dtype_policy": keras.mixed_precision.dtype_policy().name})
        mlflow.set_tags(tracking.run_tags(app.name, args.dataset, args.cell))

    started = time.perf_counter()
    data = app.load_data(args)
    model = app.build_model(args, data)
    optimizer = keras.optimizers.Adam(
        learning_rate=args.learning_rate, clipnorm=args.clipnorm if args.clipnorm > 0 else None
    )
    model.compile(optimizer=optimizer, jit_compile=xla, **app.compile_arguments(args, data))
    if verbose:
        model.summary(print_fn=lambda line, **_: print(line))

    best = BestCheckpoint(checkpoint, app.monitor, mode=app.monitor_mode, patience=args.patience)
    callbacks = [
        EpochEvaluation(lambda m: app.evaluate(m, data, "valid")),
        best,
        MlflowEpochLogger(),
        keras.callbacks.BackupAndRestore(str(checkpoint / "backup")),
    ]
    model.fit(
        app.fit_dataset(data, "train"),
        validation_data=app.fit_dataset(data, "valid"),
        epochs=args.epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the app's pipeline shuffles
    )
    best.restore(model)
    train_seconds = time.perf_counter() - started

    final = {f"best_{app.monitor}": best.state["best"], "best_epoch": best.state["best_epoch"] + 1}
    final["train_seconds"] = train_seconds
    has_test = data.has_split("test")
    report_split = "test" if has_test else "valid"
    if has_test:
        final.update({f"test_{k}": v for k, v in app.evaluate(model, data, "test").items()})
    else:
        print(f"warning: {args.dataset} has no test split here; reports describe the validation split")
    mlflow.log_metrics(final)

    history = tracking.metric_history(run_id, _curve_keys(model, app))
    figure = tracking.learning_curve(history, f"{app.name}: {args.dataset}, {_run_name(args)}")
    mlflow.log_figure(figure, "learning_curve.png")
    for name, text in app.reports(model, data, report_split).items():
        mlflow.log_text(text, f"reports/{name}")
    assets = checkpoint / "assets"
    app.save_assets(data, assets)
    if assets.exists():
        mlflow.log_artifacts(str(assets), "assets")

    serving = app.serving_model(model, data, args)
    local_model = checkpoint / "model.keras"
    serving.save(local_model)
    info = mlflow.keras.log_model(
        serving,
        name="model",
        signature=app.signature(serving),
        pip_requirements=tracking.model_requirements(),
        registered_model_name=args.register_model,
    )
    summary = "  ".join(f"{k} {v:.4f}" for k, v in final.items() if isinstance(v, float))
    print(f"\nrun {run_id} finished: {summary}")
    print(f"model: {local_model}  (MLflow: runs:/{run_id}/model, {info.model_uri})")
    print(f"MLflow UI: mlflow ui --backend-store-uri {mlflow.get_tracking_uri()}  -> http://127.0.0.1:5000")


def _curve_keys(model, app):
    keys = ["loss", "val_loss", app.monitor]
    keys += [name for name in getattr(app, "curve_metrics", ()) if name not in keys]
    return keys


# Saved models ------------------------------------------------------------------------------


def load_model(location, tracking_uri=None):
    """A saved serving model from a .keras file, an MLflow model folder, or an MLflow URI."""
    import layers  # noqa: F401  (registers the custom layers with Keras before loading)
    import pipelines.text  # noqa: F401

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    path = Path(location)
    if path.is_file() and path.suffix == ".keras":
        return keras.saving.load_model(path)
    if path.is_dir() and (path / "MLmodel").exists():
        return mlflow.keras.load_model(str(path))
    if "://" in location or location.startswith(("runs:/", "models:/")):
        try:
            return mlflow.keras.load_model(location)
        except Exception as error:  # MLflow raises several types for a missing model
            raise UserError(f"--model {location}: cannot load it from MLflow ({error})") from None
    raise UserError(
        f"--model {location}: no such file or MLflow model. Pass a .keras file, an MLflow model "
        f"folder, or a URI such as runs:/RUN_ID/model or models:/NAME/VERSION."
    )


def evaluate(app, args):
    model = load_model(args.model, args.tracking_uri)
    metrics = app.evaluate_saved(model, args)
    if args.json:
        print(json.dumps(metrics, indent=1))
    else:
        for name, value in metrics.items():
            print(f"{args.split}_{name}: {value:.4f}")
    return metrics


def predict(app, args):
    inputs = args.inputs or [line.strip() for line in sys.stdin if line.strip()]
    if not inputs:
        raise UserError("nothing to predict: pass inputs as arguments or one per line on standard input")
    model = load_model(args.model, args.tracking_uri)
    return app.predict(model, inputs, args)
