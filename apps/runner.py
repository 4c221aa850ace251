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
import contextlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402

from apps import tracking  # noqa: E402
from apps.callbacks import (  # noqa: E402
    AveragedWeights,
    BestCheckpoint,
    EpochEvaluation,
    InterruptAtBatchEnd,
    MlflowEpochLogger,
    averages_weights,
)
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
    supports_cv = False  # whether `train --cv K` (K-fold cross-validation) applies
    supports_members = False  # whether `train --members N` applies (the app defines `average_members`)
    # Flags whose values change the data (a tuning trial that varies them reloads it).
    data_arguments = ("dataset", "data_dir", "batch_size", "seed")
    # Set when --dataset also takes open-ended specs (csv:PATH, ...): its help text.
    dataset_help = None

    @property
    def search_space(self):
        """The default `tune` search space (see apps.tuning)."""
        from apps.tuning import DEFAULT_SPACE

        return DEFAULT_SPACE

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

    def after_training(self, model, data):
        """A last step on the best epoch's model before it is tested and saved (e.g. blending two
        classifiers' scores with weights fitted on the validation split); returns metrics to log."""
        return {}

    def average_members(self, members, data):
        """With `train --members N`: one model (uncompiled) from N trained training models,
        e.g. their averaged class probabilities (`layers.AveragedProbabilities`)."""
        raise NotImplementedError

    def baseline_metrics(self, data, split):
        """Metrics of a baseline method on `split`, logged beside the model's (e.g. tfidf_f1_at_10)."""
        return {}

    def reports(self, model, data, split):
        """{file name: text or matplotlib figure}: artifacts describing the model on `split`."""
        return {}

    def model_metadata(self, serving_model):
        """Metadata stored with the logged model (e.g. the class names of its outputs)."""
        return None

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

    def add_evaluate_arguments(self, parser):
        """Adds the app's own `evaluate` flags."""


# Command line ------------------------------------------------------------------------------


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive integer, got {text}")
    return value


def _at_least_two(text):
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2, got {text}")
    return value


def fraction(text):
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
    if app.dataset_help:
        parser.add_argument(
            "--dataset", default=app.datasets[0], help=f"{app.dataset_help} (default: %(default)s)"
        )
    else:
        parser.add_argument(
            "--dataset", choices=app.datasets, default=app.datasets[0], help="data set (default: %(default)s)"
        )
    parser.add_argument(
        "--data-dir",
        help="folder holding the data sets (default: $RNN_SUITE_DATA, else the user cache, "
        "where missing files are downloaded)",
    )


def add_training_arguments(parser, app, several_models=True):
    """The flags of `train` and `tune`: data, model, training, tracking; with `several_models`
    (train), those that train several models in one run (--cv, --members)."""
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
        "ema": 0.0,
        "reduce_lr": 0,
        **app.defaults,
    }
    add_data_arguments(parser, app)
    parser.set_defaults(fold=None, cv=None, members=1)  # the fixed split, unless cross-validation picks a fold
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=CELL_KINDS, default=d["cell"], help="recurrent cell (default: %(default)s)")
    model.add_argument(
        "--bidirectional",
        action=argparse.BooleanOptionalAction,
        default=d["bidirectional"],
        help="run each recurrent layer in both directions (default: %(default)s)",
    )
    model.add_argument("--layers", type=_positive_int, default=d["layers"], help="stacked recurrent layers (default: %(default)s)")
    model.add_argument("--units", type=_positive_int, default=d["units"], help="units per recurrent layer (default: %(default)s)")
    model.add_argument("--dropout", type=fraction, default=d["dropout"], help="dropout of the recurrent inputs (default: %(default)s)")
    model.add_argument(
        "--recurrent-dropout",
        type=fraction,
        default=d["recurrent_dropout"],
        help="dropout of the recurrent state; > 0 turns cuDNN off for Keras' cells (default: %(default)s)",
    )
    app.add_arguments(model)
    fit = parser.add_argument_group("training")
    fit.add_argument("--epochs", type=_positive_int, default=d["epochs"], help="maximum epochs (default: %(default)s)")
    fit.add_argument("--batch-size", type=_positive_int, default=d["batch_size"], help="(default: %(default)s)")
    fit.add_argument("--learning-rate", type=float, default=d["learning_rate"], help="Adam's learning rate (default: %(default)s)")
    fit.add_argument(
        "--clipnorm", type=float, default=d["clipnorm"], help="clip each gradient's norm to this; 0 turns clipping off (default: %(default)s)"
    )
    fit.add_argument(
        "--patience", type=_positive_int, default=d["patience"], help=f"stop after this many epochs without a better {app.monitor} (default: %(default)s)"
    )
    fit.add_argument(
        "--reduce-lr",
        type=non_negative_int,
        default=d["reduce_lr"],
        metavar="PATIENCE",
        help=f"halve the learning rate after this many epochs without a better {app.monitor} "
        "(Keras' ReduceLROnPlateau); 0: a constant rate (default: %(default)s)",
    )
    fit.add_argument(
        "--ema",
        type=fraction,
        default=d["ema"],
        metavar="MOMENTUM",
        help="average the weights over training (Polyak averaging: an exponential moving average "
        "with this momentum, e.g. 0.998 averages over about 500 steps); validation, the best "
        "checkpoint and the saved model use the average; 0: off (default: %(default)s)",
    )
    fit.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    if app.supports_cv and several_models:
        fit.add_argument(
            "--cv",
            type=_at_least_two,
            metavar="K",
            help="K-fold cross-validation: K models, each tested on one fold; one MLflow parent "
            "run logging cv_<metric> and cv_<metric>_std, a child run per fold",
        )
    if app.supports_members and several_models:
        fit.add_argument(
            "--members",
            type=_positive_int,
            default=1,
            metavar="N",
            help="train N models (an ensemble), each a child run with its own seed (SEED*N+i for "
            "member i, so ensembles of different seeds share no member), and average their "
            "probabilities into one model, whose metrics, reports and model the parent run logs; "
            "N times the training time (default: %(default)s)",
        )
    fit.add_argument("--mixed-precision", action="store_true", help="compute in float16 (for GPUs with tensor cores)")
    fit.add_argument(
        "--xla",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compile the training step with XLA. Default: on for the custom cells (elman, "
        "jordan, peephole_lstm) on a GPU, off otherwise: on a CPU each batch shape's "
        "compilation costs more than XLA saves (README, Performance). The choice is the "
        "run's `jit_compile` tag",
    )
    fit.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None, help="Keras fit verbosity (default: 1 on a terminal, else 2)")
    track = parser.add_argument_group("tracking")
    add_store_arguments(track)
    track.add_argument("--experiment", default=app.name, help="MLflow experiment (default: %(default)s)")
    track.add_argument("--register-model", metavar="NAME", help="also register the logged model under NAME")
    return track


def build_parser(app):
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
    track = add_training_arguments(train, app)
    track.add_argument("--run-name", help="MLflow run name (default: DATASET-CELL...)")
    track.add_argument(
        "--checkpoint-dir", default="checkpoints", help="where each run keeps its checkpoints, in RUN_ID/ (default: %(default)s)"
    )
    track.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted training run from its checkpoint")

    tune = commands.add_parser(
        "tune",
        help="search hyperparameters with keras-tuner, tracked in MLflow",
        description="Search hyperparameters with keras-tuner. The job is one MLflow parent run, "
        "each trial a child run. --epochs is each trial's epochs (Hyperband's maximum).",
    )
    track = add_training_arguments(tune, app, several_models=False)
    search = tune.add_argument_group("search")
    search.add_argument("--tuner", choices=("random", "bayesian", "hyperband"), default="random", help="(default: %(default)s)")
    search.add_argument("--max-trials", type=_positive_int, default=10, help="trials to run (random, bayesian) (default: %(default)s)")
    search.add_argument("--search-space", metavar="FILE", help="YAML or JSON search space replacing the app's default")
    search.add_argument("--tuner-dir", default="tuning", help="keras-tuner's folder, APP/PROJECT inside (default: %(default)s)")
    search.add_argument("--project", help="the job's name (default: DATASET-TUNER)")
    search.add_argument("--resume", action="store_true", help="continue an interrupted job without redoing finished trials")
    search.add_argument("--max-failed-trials", type=_positive_int, default=3, help="stop after this many failed trials in a row (default: %(default)s)")
    distributed = tune.add_argument_group("distributed tuning (keras-tuner's chief/worker mode over gRPC)")
    distributed.add_argument("--distributed", choices=("chief", "worker"), help="this process's role")
    distributed.add_argument("--oracle", metavar="HOST:PORT", help="the chief's address (the chief listens there)")
    distributed.add_argument("--worker-id", help="a worker's name (default: its process id)")
    distributed.add_argument(
        "--wait-for-chief", type=int, default=120, help="seconds a worker waits for the chief's MLflow run (default: %(default)s)"
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="score a saved model on a data split",
        description="Score a saved model (a .keras file, an MLflow model folder or URI) on a split.",
    )
    evaluate.add_argument("--model", required=True, help="a .keras file, an MLflow model folder, or a URI (runs:/ID/model, models:/NAME/VERSION)")
    add_data_arguments(evaluate, app)
    evaluate.add_argument("--split", choices=("train", "valid", "test"), default="test", help="(default: %(default)s)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    app.add_evaluate_arguments(evaluate)
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
        elif args.command == "tune":
            from apps.tuning import tune

            tune(app, args)
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
    """Trains one model (one MLflow run) or, with --cv K, K models (a parent run, K child runs)."""
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
    if getattr(args, "cv", None):
        return _cross_validate(app, args, resuming, verbose)
    if getattr(args, "members", 1) > 1:  # absent from the saved arguments of older runs
        return _ensemble(app, args, resuming, verbose)
    args.fold = None
    run_name = args.run_name or _run_name(args)
    with _tracked_run(app, args, args.resume, run_name) as (run_id, checkpoint):
        _train_in_run(app, args, run_id, checkpoint, resuming, verbose)
    return run_id


@contextlib.contextmanager
def _tracked_run(app, args, run_id, run_name, nested=False, resume_id=None):
    """An MLflow run that ends FAILED (KILLED on Ctrl-C) on an exception, saying how to resume.

    Yields (run id, checkpoint folder). `resume_id` is the run to name in the
    resume hint (the parent of a cross-validation).
    """
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name, nested=nested) as run:
        run_id = run.info.run_id
        checkpoint = Path(args.checkpoint_dir) / run_id
        print(f"MLflow run {run_id} ({run_name}) in {mlflow.get_tracking_uri()}", flush=True)
        try:
            yield run_id, checkpoint
        except BaseException as error:
            status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            mlflow.end_run(status=status)
            if not nested:
                print(
                    f"\ntraining stopped ({type(error).__name__}); run {run_id} is marked {status}.\n"
                    f"Its checkpoints are in {Path(args.checkpoint_dir)}. Continue it with:\n"
                    f"  python -m apps.{app.name} train --resume {resume_id or run_id}"
                    + (f" --checkpoint-dir {args.checkpoint_dir}" if args.checkpoint_dir != "checkpoints" else "")
                    + (f" --tracking-uri {args.tracking_uri}" if args.tracking_uri else ""),
                    file=sys.stderr,
                )
            raise


def _child_runs(app, args, parent_id, run_name, tag, children, verbose):
    """Trains each of `children` ([(arguments, random seed)]) in a child run of `parent_id`,
    tagged `tag` = its index and named after the tag's last word (RUN_NAME-fold0 for cv_fold);
    children that finished in an earlier session (a resumed parent) are not trained again.
    Returns [(child run id, its final metrics)] in order."""
    existing = {}
    for child in mlflow.search_runs(
        experiment_ids=[mlflow.get_run(parent_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        output_format="list",
    ):
        if tag in child.data.tags:
            existing[int(child.data.tags[tag])] = child
    word = tag.rsplit("_", 1)[-1]  # cv_fold -> fold
    results = []
    for index, (child_args, seed) in enumerate(children):
        label = f"{word} {index + 1}/{len(children)}"
        child = existing.get(index)
        if child is not None and child.info.status == "FINISHED":
            print(f"{label}: finished earlier, run {child.info.run_id}")
            results.append((child.info.run_id, child.data.metrics))
            continue
        keras.utils.set_random_seed(seed)
        print(f"\n{label}", flush=True)
        child_id = child.info.run_id if child is not None else None
        with _tracked_run(
            app, child_args, child_id, f"{run_name}-{word}{index}", nested=True, resume_id=parent_id
        ) as (run_id, child_checkpoint):
            if child_id is None:
                mlflow.set_tag(tag, index)
            results.append(
                (run_id, _train_in_run(app, child_args, run_id, child_checkpoint, child_id is not None, verbose))
            )
    return results


def _cross_validate(app, args, resuming, verbose):
    """K folds, each a child run; the parent logs cv_<metric> (mean) and cv_<metric>_std."""
    run_name = args.run_name or f"{_run_name(args)}-cv{args.cv}"
    with _tracked_run(app, args, args.resume, run_name) as (parent_id, checkpoint):
        if not resuming:
            _log_run_start(app, args, checkpoint, extra_tags={"cv_folds": args.cv})
        folds = [(argparse.Namespace(**{**vars(args), "fold": fold}), args.seed + fold) for fold in range(args.cv)]
        results = [metrics for _, metrics in _child_runs(app, args, parent_id, run_name, "cv_fold", folds, verbose)]
        summary = {}
        for key in sorted(results[0]):
            if key.startswith("test_"):
                values = [r[key] for r in results]
                summary[f"cv_{key[5:]}"] = float(np.mean(values))
                summary[f"cv_{key[5:]}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        mlflow.log_metrics(summary)
        print(f"\n{args.cv}-fold cross-validation, run {parent_id}: " + "  ".join(
            f"{k} {v:.4f}" for k, v in summary.items()
        ))
    return parent_id


def _ensemble(app, args, resuming, verbose):
    """--members N: N models, each a child run (member i with seed SEED*N+i), combined by the
    app into one model, which the parent run validates, tests, reports on and logs like a
    single training's; it also logs the members' mean test metrics (members_test_<metric>)."""
    count = args.members
    run_name = args.run_name or f"{_run_name(args)}-members{count}"
    with _tracked_run(app, args, args.resume, run_name) as (parent_id, checkpoint):
        if not resuming:
            _log_run_start(app, args, checkpoint, extra_tags={"ensemble_members": count})
        members_args = [
            argparse.Namespace(**{**vars(args), "seed": args.seed * count + i, "members": 1}) for i in range(count)
        ]  # fmt: skip
        children = _child_runs(
            app, args, parent_id, run_name, "ensemble_member", [(a, a.seed) for a in members_args], verbose
        )  # fmt: skip
        print(f"\nensemble of {count} members, run {parent_id}", flush=True)
        started = time.perf_counter()
        data = app.load_data(args)
        members = []
        for index, ((child_id, _), member_args) in enumerate(zip(children, members_args)):
            weights = BestCheckpoint(Path(args.checkpoint_dir) / child_id, app.monitor).weights_path
            if not weights.exists():
                raise UserError(
                    f"member {index} (run {child_id}): its best weights {weights} are missing; "
                    f"pass the --checkpoint-dir it was trained with"
                )
            member = app.build_model(member_args, data)
            member.load_weights(weights)
            member.name = f"{member.name}_{index}"  # unique names inside the combined model
            members.append(member)
        model = app.average_members(members, data)
        # Before the app's last step (e.g. a ranking fitted on the validation split) reads it.
        validation = app.evaluate(model, data, "valid")
        final = {"members": count}
        for name in validation:  # the model's own metrics (not the baseline's): the members' mean
            values = [metrics[f"test_{name}"] for _, metrics in children if f"test_{name}" in metrics]
            if values:
                final[f"members_test_{name}"] = float(np.mean(values))
        final["members_train_seconds"] = float(sum(metrics.get("train_seconds", 0.0) for _, metrics in children))
        final.update({f"val_{k}": v for k, v in validation.items()})
        curves = {}  # the members' learning curves, side by side
        for index, (child_id, _) in enumerate(children):
            history = tracking.metric_history(child_id, ["loss", "val_loss", app.monitor])
            curves.update({f"member {index} {key}": points for key, points in history.items()})
        _finish_run(app, args, parent_id, checkpoint, model, data, final, started, curves)
    return parent_id


def _log_run_start(app, args, checkpoint, extra_tags=None):
    """Params, tags and the saved arguments (for --resume) of a new run."""
    checkpoint.mkdir(parents=True, exist_ok=True)
    saved = {k: v for k, v in vars(args).items() if k != "command"}
    # Where the data came from, so that --resume finds it from any shell.
    saved["data_dir"] = args.data_dir or os.environ.get(DATA_ENV)
    (checkpoint / "args.json").write_text(json.dumps(saved, indent=1))
    mlflow.log_params({k: ("" if v is None else v) for k, v in saved.items()})
    mlflow.log_params({"dtype_policy": keras.mixed_precision.dtype_policy().name})
    mlflow.set_tags({**tracking.run_tags(app.name, args.dataset, args.cell), **(extra_tags or {})})


def xla_choice(cell, xla=None):
    """(whether to compile with XLA, why): `xla` when given, else the fast path of `cell`.

    Keras' own cells keep their own path (cuDNN on a GPU). The custom cells already
    take their input projection out of the time loop (layers.base.CellLayer); XLA
    also fuses each step's small operations, which pays on a GPU. On a CPU, with the
    apps' bucketed batches, compiling every batch shape cost more than it saved
    (measured: benchmarks and README, Performance).
    """
    if xla is not None:
        return bool(xla), "asked (--xla)" if xla else "asked (--no-xla)"
    from layers import CUSTOM_KINDS

    on_gpu = bool(tf_gpus())
    if cell in CUSTOM_KINDS and on_gpu:
        return True, "default: custom cell on a GPU"
    if cell in CUSTOM_KINDS:
        return False, "default: custom cell on a CPU (compilation costs more than it saves)"
    return False, "default: Keras' built-in cell keeps its own path"


def tf_gpus():
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def compile_model(app, model, args, data):
    """Adam with gradient clipping (and weight averaging with --ema), XLA by `xla_choice`
    (tagged on the active run), and the app's losses."""
    ema = getattr(args, "ema", 0.0)  # absent from the saved arguments of older runs
    optimizer = keras.optimizers.Adam(
        learning_rate=args.learning_rate,
        clipnorm=args.clipnorm if args.clipnorm > 0 else None,
        use_ema=ema > 0,
        ema_momentum=ema if ema > 0 else 0.99,
    )
    jit_compile, reason = xla_choice(args.cell, args.xla)
    if mlflow.active_run():
        mlflow.set_tags({"jit_compile": "on" if jit_compile else "off", "jit_compile_reason": reason})
    model.compile(optimizer=optimizer, jit_compile=jit_compile, **app.compile_arguments(args, data))


def rate_schedule(app, args):
    """--reduce-lr: ReduceLROnPlateau on the app's validation metric (after EpochEvaluation has logged it)."""
    patience = getattr(args, "reduce_lr", 0)  # absent from the saved arguments of older runs
    if not patience:
        return []
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor=app.monitor, mode=app.monitor_mode, factor=0.5, patience=patience, min_lr=args.learning_rate / 64
        )
    ]


def fit_model(app, model, data, args, epochs, verbose, callbacks=(), after_logging=(), initial_epoch=0):
    """`model.fit` on the app's pipelines with the shared callbacks (training runs and tuning trials).

    Order: Ctrl-C at batch end, the app's validation metrics (so later callbacks
    see them), `callbacks`, the --reduce-lr schedule, MLflow logging,
    `after_logging`. With --ema, the validation metrics, `callbacks` and the
    schedule see the averaged weights.
    """
    interrupt = InterruptAtBatchEnd()
    evaluated = [EpochEvaluation(lambda m: app.evaluate(m, data, "valid")), *callbacks, *rate_schedule(app, args)]
    if averages_weights(model):  # --ema: evaluate and keep the averaged weights
        evaluated = AveragedWeights().callbacks(evaluated)
    callbacks = [interrupt, *evaluated, MlflowEpochLogger(), *after_logging]
    try:
        return model.fit(
            app.fit_dataset(data, "train"),
            validation_data=app.fit_dataset(data, "valid"),
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the app's pipeline shuffles
        )
    finally:
        interrupt.on_train_end()  # Keras skips it when fit raises


def _train_in_run(app, args, run_id, checkpoint, resuming, verbose):
    """Trains, evaluates and logs one model in the active run; returns its final metrics."""
    checkpoint.mkdir(parents=True, exist_ok=True)
    if not resuming:
        _log_run_start(app, args, checkpoint)

    started = time.perf_counter()
    data = app.load_data(args)
    model = app.build_model(args, data)
    compile_model(app, model, args, data)
    if verbose:
        model.summary(print_fn=lambda line, **_: print(line))

    best = BestCheckpoint(checkpoint, app.monitor, mode=app.monitor_mode, patience=args.patience)
    backup = keras.callbacks.BackupAndRestore(str(checkpoint / "backup"))
    fit_model(app, model, data, args, args.epochs, verbose, callbacks=[best], after_logging=[backup])
    best.restore(model)
    final = {f"best_{app.monitor}": best.state["best"], "best_epoch": best.state["best_epoch"] + 1}
    return _finish_run(app, args, run_id, checkpoint, model, data, final, started)


def _finish_run(app, args, run_id, checkpoint, model, data, final, started, curves=None):
    """The app's last step on the trained `model`, its test metrics (with `final`), learning
    curves (`curves`, else the run's own), reports, assets and serving model, logged to the
    active run; returns the metrics."""
    final.update(app.after_training(model, data))
    final["train_seconds"] = time.perf_counter() - started
    has_test = data.has_split("test")
    report_split = "test" if has_test else "valid"
    if has_test:
        final.update({f"test_{k}": v for k, v in app.evaluate(model, data, "test").items()})
        final.update({f"test_{k}": v for k, v in app.baseline_metrics(data, "test").items()})
    else:
        print(f"warning: {args.dataset} has no test split here; reports describe the validation split")
    mlflow.log_metrics(final)

    history = curves or tracking.metric_history(run_id, _curve_keys(model, app))
    figure = tracking.learning_curve(history, f"{app.name}: {args.dataset}, {_run_name(args)}")
    tracking.log_report("learning_curve.png", figure)
    for name, report in app.reports(model, data, report_split).items():
        tracking.log_report(f"reports/{name}", report)
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
        # Plain JSON types: layer attributes are Keras-tracked lists and dicts.
        metadata=json.loads(json.dumps(app.model_metadata(serving))),
    )
    summary = "  ".join(f"{k} {v:.4f}" for k, v in final.items() if isinstance(v, float))
    print(f"\nrun {run_id} finished: {summary}")
    print(f"model: {local_model}  (MLflow: runs:/{run_id}/model, {info.model_uri})")
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        print(f"MLflow UI: {uri}")  # a tracking server serves its own UI
    else:
        print(f"MLflow UI: mlflow ui --backend-store-uri {uri}  -> http://127.0.0.1:5000")
    return final


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
