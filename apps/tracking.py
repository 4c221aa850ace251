"""MLflow helpers shared by every app: store, tags, parameters, figures."""

import contextlib
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np

from apps.app import UserError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent first use stays MLflow's
    fcntl = None

REPOSITORY = Path(__file__).resolve().parent.parent
LIBRARIES = ("tensorflow", "keras", "tensorflow-text", "mlflow", "numpy", "keras-tuner")
# What a logged model needs to be loaded, run and served elsewhere: the network's libraries and
# what the app modules it ships import (`apps.serving`); not the tuning, test or server extras.
MODEL_REQUIREMENTS = (
    "tensorflow", "keras", "tensorflow-text", "numpy", "mlflow", "seqeval", "sacrebleu", "sacremoses",
    "scikit-learn", "scipy", "nltk", "librosa", "soundfile", "matplotlib", "tqdm", "PyYAML",
)  # fmt: skip


def configure(tracking_uri=None, experiment=None):
    """Points MLflow at `tracking_uri` (default: MLflow's own, `mlflow.db` here) and the experiment,
    after checking a SQLite store can be one (`check_sqlite_store`), and marks KILLED the runs
    whose process is gone (`apps.run_owners`)."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    uri = mlflow.get_tracking_uri()
    check_sqlite_store(uri)
    if experiment:
        try:
            with first_use_lock(uri):
                mlflow.set_experiment(experiment)
        except Exception as error:  # the store's own errors: SQLAlchemy's, MLflow's, the OS's
            raise UserError(
                f"--tracking-uri {uri}: MLflow cannot use this store ({type(error).__name__}: {error})"
            ) from None
        from apps import run_owners

        run_owners.mark_abandoned()
    return uri


SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite_store(uri):
    """Refuses, with a message, a SQLite store MLflow would fail on with a traceback or silently
    damage: a folder that cannot be written (SQLite keeps its journal beside the database), a
    file that is not a database, a database of another program (MLflow would add its ~70 tables
    to it). Other stores pass through."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return
    path = Path(uri[len(prefix) :].split("?")[0])
    where = f"--tracking-uri {uri}"
    if path.is_dir():
        raise UserError(f"{where}: {path} is a folder; name a database file in it, e.g. sqlite:///{path}/mlflow.db")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as error:
        raise UserError(
            f"{where}: cannot write in {path.parent} ({error.strerror}); SQLite writes its journal beside the "
            f"database, so the folder must be writable: pick another place, e.g. sqlite:///{Path.home()}/mlflow.db"
        ) from None
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with open(path, "r+b") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as error:
        raise UserError(f"{where}: cannot open {path} for writing ({error.strerror})") from None
    if header != SQLITE_HEADER:
        raise UserError(
            f"{where}: {path} is not a SQLite database (it starts with {header[:8]!r}); name a new file "
            f"or an MLflow store"
        )
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as database:
            tables = {row[0] for row in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise UserError(f"{where}: {path} is not a readable SQLite database ({error})") from None
    if tables and not {"alembic_version", "experiments"} & tables:
        raise UserError(
            f"{where}: {path} is a database of another program (tables {', '.join(sorted(tables)[:5])}); "
            f"MLflow would add its own tables to it. Name a new file for the tracking store"
        )


@contextlib.contextmanager
def first_use_lock(tracking_uri):
    """Holds an exclusive lock on `FILE.db.lock` around the first use of a SQLite store.

    MLflow creates and migrates a store's tables on first use; trainings started
    at the same moment on a new store then fail inside its migration ("table ...
    already exists"). Other stores (servers, PostgreSQL) pass through.
    """
    prefix = "sqlite:///"
    if fcntl is None or not tracking_uri.startswith(prefix):
        yield
        return
    path = Path(tracking_uri[len(prefix) :].split("?")[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def device_description():
    """'GPU: <name>' for each visible GPU, else 'CPU (<n> cores)'."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        return "GPU: " + ", ".join(names)
    return f"CPU ({os.cpu_count()} cores)"


def library_versions():
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def git_commit():
    """The repository's commit, with '-dirty' when files differ from it; None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def run_tags(app_name, dataset, cell):
    tags = {"app": app_name, "dataset": dataset, "cell": cell, "device": device_description()}
    tags.update({f"version.{name}": version for name, version in library_versions().items()})
    commit = git_commit()
    if commit:
        tags["git_commit"] = commit
    tags["command"] = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    return tags


def model_requirements():
    return [f"{name}=={metadata.version(name)}" for name in MODEL_REQUIREMENTS]


def metric_history(run_id, keys):
    """{key: [(step, value), ...]} from the store: complete even across resumed sessions."""
    client = mlflow.tracking.MlflowClient()
    history = {}
    for key in keys:
        points = client.get_metric_history(run_id, key)
        if points:
            history[key] = sorted((p.step, p.value) for p in points)
    return history


def log_skipped(skipped, words=3, echo=True):
    """Prints and logs counted skips of data preparation ({reason: count}) as `skipped_*` metrics.

    Logged only inside a run: data read before its run starts (`train` reads it first, so that a
    bad file fails before a run exists; a tuner, before its job's run) is logged when the next
    run starts (`log_unlogged_skips`): logging outside a run would start one of its own.
    """
    if not skipped:
        return
    if echo:
        print("skipped: " + ", ".join(f"{n} {reason}" for reason, n in skipped.items()))
    metrics = {"skipped_" + "_".join(reason.split()[:words]): n for reason, n in skipped.items()}
    if mlflow.active_run() is not None:
        mlflow.log_metrics(metrics)
    else:
        _unlogged_skips.update(metrics)


# Skips counted while no run was active (data read before its run starts), for the next run.
_unlogged_skips = {}


def forget_unlogged_skips():
    """Drops skips counted outside a run (before a command reads its own data: a long-lived
    process may have read other data before)."""
    _unlogged_skips.clear()


def log_unlogged_skips():
    """Logs to the active run the skips counted before it started (`log_skipped`)."""
    if _unlogged_skips and mlflow.active_run() is not None:
        mlflow.log_metrics(dict(_unlogged_skips))
        _unlogged_skips.clear()


def log_report(path, report):
    """Logs a text or a matplotlib figure (then closed) as the artifact `path`."""
    if isinstance(report, str):
        mlflow.log_text(report, path)
        return
    import matplotlib.pyplot as plt

    mlflow.log_figure(report, path)
    plt.close(report)


def learning_curve(history, title):
    """A figure: losses on the left, the app's validation metrics on the right, per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key, points in history.items():
        steps, values = zip(*points)
        epochs = [s + 1 for s in steps]
        axis = left if key.endswith("loss") else right
        axis.plot(epochs, values, marker="o", markersize=3, label=key)
    left.set(title="loss", xlabel="epoch")
    right.set(title="validation metrics", xlabel="epoch")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def confusion_figure(matrix, labels, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4, 0.6 * len(labels) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    axis.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    plt.setp(axis.get_xticklabels(), rotation=45, ha="right")
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        axis.text(j, i, str(count), ha="center", va="center", color=color)
    figure.tight_layout()
    return figure
