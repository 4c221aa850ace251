"""The command line every app shares: `python -m apps.APP COMMAND [flags]`.

    python -m apps.APP train    [--cell KIND --bidirectional --layers N ...]
    python -m apps.APP tune     [--tuner bayesian --max-trials 20 ...]
    python -m apps.APP evaluate --model PATH_OR_URI [--split test]
    python -m apps.APP predict  --model PATH_OR_URI "some input" ...

The flags common to every app are defined here; an app adds its own through
`App.add_arguments` (and `add_predict_arguments`, `add_evaluate_arguments`).
"""

import argparse
import math
import os
import sys

from apps.app import UserError, WorkerLost
from layers import CELL_KINDS
from pipelines.sources import ChecksumError, DataFormatError, DataNotFoundError


def int_at_least(minimum, meaning, maximum=None):
    """An argparse type: an integer no less than `minimum` (and no more than `maximum`);
    `meaning` says what that is."""

    def parse(text):
        value = int(text)
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {meaning}, got {text}")
        return value

    parse.__name__ = "integer"  # argparse's word for a value that is not one: "invalid integer value"
    return parse


def number(meaning, minimum=None, maximum=None, above=None, below=None):
    """An argparse type: a finite number in range (`minimum`/`maximum` inclusive, `above`/`below`
    exclusive); `meaning` says what the range is. NaN and infinities are refused: a NaN
    learning rate would train a NaN model without a word."""

    def parse(text):
        value = float(text)
        if (
            not math.isfinite(value)
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
            or (above is not None and value <= above)
            or (below is not None and value >= below)
        ):
            raise argparse.ArgumentTypeError(f"must be {meaning}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "0 or a positive integer")
_at_least_two = int_at_least(2, "at least 2")
seed = int_at_least(0, "an integer from 0 to 2**32 - 1 (NumPy's seeds)", 2**32 - 1)


def odd_positive_int(text):
    """An argparse type: an odd positive integer (a window centred on its word)."""
    value = positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be odd (a window centred on its word), got {text}")
    return value


odd_positive_int.__name__ = "integer"
positive_number = number("a finite number above 0", above=0.0)
non_negative_number = number("a finite number, 0 or above", minimum=0.0)
fraction = number("in [0, 1)", minimum=0.0, below=1.0)


def add_store_arguments(parser):
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's local "
        "default, sqlite:///mlflow.db in the current folder)",
    )


def add_model_argument(parser):
    parser.add_argument(
        "--model",
        required=True,
        help="a .keras file, an MLflow model folder, or a URI (runs:/ID/model, models:/NAME/VERSION)",
    )


def add_unsafe_argument(parser):
    parser.add_argument(
        "--unsafe-load",
        action="store_true",
        help="also load a model that can run code as it loads: a .keras file with Lambda layers "
        "(Keras' safe mode off) or an MLflow model exported as a TensorFlow SavedModel. Off by "
        "default; use it only for a file you trust, as it may run anything",
    )


def add_data_arguments(parser, app):
    if app.dataset_help:
        parser.add_argument("--dataset", default=app.datasets[0], help=f"{app.dataset_help} (default: %(default)s)")
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
        "time_limit": 0,
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
    model.add_argument(
        "--layers", type=positive_int, default=d["layers"], help="stacked recurrent layers (default: %(default)s)"
    )
    model.add_argument(
        "--units", type=positive_int, default=d["units"], help="units per recurrent layer (default: %(default)s)"
    )
    model.add_argument(
        "--dropout", type=fraction, default=d["dropout"], help="dropout of the recurrent inputs (default: %(default)s)"
    )
    model.add_argument(
        "--recurrent-dropout",
        type=fraction,
        default=d["recurrent_dropout"],
        help="dropout of the recurrent state; > 0 turns cuDNN off for Keras' cells (default: %(default)s)",
    )
    app.add_arguments(model)
    fit = parser.add_argument_group("training")
    fit.add_argument("--epochs", type=positive_int, default=d["epochs"], help="maximum epochs (default: %(default)s)")
    fit.add_argument("--batch-size", type=positive_int, default=d["batch_size"], help="(default: %(default)s)")
    fit.add_argument(
        "--learning-rate",
        type=positive_number,
        default=d["learning_rate"],
        help="Adam's learning rate (default: %(default)s)",
    )
    fit.add_argument(
        "--clipnorm",
        type=non_negative_number,
        default=d["clipnorm"],
        help="clip each gradient's norm to this; 0 turns clipping off (default: %(default)s)",
    )
    fit.add_argument(
        "--patience",
        type=positive_int,
        default=d["patience"],
        help=f"stop after this many epochs without a better {app.monitor} (default: %(default)s)",
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
        "--time-limit",
        type=non_negative_number,
        default=d["time_limit"],
        metavar="MINUTES",
        help="stop training before an epoch that would end after this many minutes of this "
        "process's training (the best epoch so far is kept); 0: no limit (default: %(default)s)",
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
    fit.add_argument("--seed", type=seed, default=0, help="random seed (default: %(default)s)")
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
            type=positive_int,
            default=1,
            metavar="N",
            help="train N models (an ensemble), each a child run with its own seed (SEED*N+i for "
            "member i, so ensembles of different seeds share no member), and average their "
            "probabilities into one model, whose metrics, reports and model the parent run logs; "
            "N times the training time (default: %(default)s)",
        )
    if several_models:  # train (tuning trials train one process each)
        from apps import distributed

        distributed.add_arguments(fit)
    fit.add_argument("--mixed-precision", action="store_true", help="compute in float16 (for GPUs with tensor cores)")
    fit.add_argument(
        "--xla",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compile the training step with XLA. Default: on for the custom cells (elman, "
        "jordan, peephole_lstm) on a GPU, off otherwise: on a CPU each batch shape's "
        "compilation costs more than XLA saves (docs/performance.md). The choice is the "
        "run's `jit_compile` tag",
    )
    fit.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=None,
        help="Keras fit verbosity (default: 1 on a terminal, else 2)",
    )
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
        "--checkpoint-dir",
        default="checkpoints",
        help="where each run keeps its checkpoints, in RUN_ID/ (default: %(default)s)",
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
    search.add_argument(
        "--tuner", choices=("random", "bayesian", "hyperband"), default="random", help="(default: %(default)s)"
    )
    search.add_argument(
        "--max-trials", type=positive_int, default=10, help="trials to run (random, bayesian) (default: %(default)s)"
    )
    search.add_argument("--search-space", metavar="FILE", help="YAML or JSON search space replacing the app's default")
    search.add_argument(
        "--tuner-dir", default="tuning", help="keras-tuner's folder, APP/PROJECT inside (default: %(default)s)"
    )
    search.add_argument("--project", help="the job's name (default: DATASET-TUNER)")
    search.add_argument(
        "--resume", action="store_true", help="continue an interrupted job without redoing finished trials"
    )
    search.add_argument(
        "--max-failed-trials",
        type=positive_int,
        default=3,
        help="stop after this many failed trials in a row (default: %(default)s)",
    )
    distributed = tune.add_argument_group("distributed tuning (keras-tuner's chief/worker mode over gRPC)")
    distributed.add_argument("--distributed", choices=("chief", "worker"), help="this process's role")
    distributed.add_argument("--oracle", metavar="HOST:PORT", help="the chief's address (the chief listens there)")
    distributed.add_argument("--worker-id", help="a worker's name (default: its process id)")
    distributed.add_argument(
        "--wait-for-chief",
        type=non_negative_int,
        default=120,
        help="seconds a worker waits for the chief's MLflow run (default: %(default)s)",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="score a saved model on a data split",
        description="Score a saved model (a .keras file, an MLflow model folder or URI) on a split.",
    )
    add_model_argument(evaluate)
    add_data_arguments(evaluate, app)
    evaluate.add_argument("--split", choices=("train", "valid", "test"), default="test", help="(default: %(default)s)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    app.add_evaluate_arguments(evaluate)
    add_unsafe_argument(evaluate)
    add_store_arguments(evaluate)

    predict = commands.add_parser(
        "predict",
        help="predict from raw input with a saved model",
        description="Predict with a saved model (a .keras file, an MLflow model folder or URI).",
    )
    add_model_argument(predict)
    predict.add_argument("inputs", nargs="*", help="inputs to predict; none: read one per line from standard input")
    predict.add_argument(
        "--json", action="store_true", help="print one JSON object per input (what the served model answers)"
    )
    app.add_predict_arguments(predict)
    add_unsafe_argument(predict)
    add_store_arguments(predict)

    for name, (summary, add_arguments, _) in app.commands().items():
        command = commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
        add_model_argument(command)
        add_arguments(command)
        add_unsafe_argument(command)
        add_store_arguments(command)

    runs = commands.add_parser(
        "runs",
        help="list the experiment's runs with their status and process; mark abandoned ones KILLED",
        description="List the experiment's latest runs: status, start, name, and the process that "
        "owns each (HOST:PID:START). A RUNNING run whose process on this host is gone (kill -9, a "
        "crash, a power cut) is marked KILLED, as train and tune also do when they start.",
    )
    add_store_arguments(runs)
    runs.add_argument("--experiment", default=app.name, help="MLflow experiment (default: %(default)s)")
    runs.add_argument(
        "--limit", type=positive_int, default=20, help="runs to list, newest first (default: %(default)s)"
    )
    runs.add_argument(
        "--mark-killed",
        nargs="+",
        metavar="RUN_ID",
        help="mark these RUNNING runs KILLED: for runs of another host whose process you know is gone",
    )
    return parser


def main(app, argv=None):
    """Runs one command of `app`; returns the exit status (2 for a user's mistake, said plainly)."""
    args = build_parser(app).parse_args(argv)
    # Each command imports what it uses: `predict` on a local .keras file starts without MLflow.
    try:
        if args.command == "train":
            from apps import training

            training.train(app, args)
        elif args.command == "tune":
            from apps import tuning  # keras-tuner: imported by the command that uses it, not by every start

            tuning.tune(app, args)
        elif args.command == "runs":
            from apps import run_owners

            run_owners.list_runs(app, args)
        else:
            from apps import saved

            {"evaluate": saved.evaluate, "predict": saved.predict}.get(args.command, saved.run_command)(app, args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (UserError, DataFormatError, DataNotFoundError, ChecksumError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except WorkerLost as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if argv is None and args.command == "predict":
        # A predict process has shown everything and has nothing to save: it ends here rather
        # than wait 0.7 s for TensorFlow's teardown (docs/performance.md, predict latency).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
