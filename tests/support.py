"""Where the tests find the shared local copies of the data sets."""

import functools
import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
# What tests keep for people to look at (e.g. a browser's screenshot); CI can collect it.
TEST_ARTIFACTS = Path(os.environ.get("RNN_SUITE_TEST_ARTIFACTS") or REPOSITORY / "test-artifacts").resolve()
SHARED_DATA = Path(os.environ.get("RNN_SUITE_DATA") or REPOSITORY.parent / "shared" / "data").resolve()

# CI sets this after installing what the tests need: a missing service or data set then fails
# the run instead of skipping its tests silently.
REQUIRE_SERVICES = os.environ.get("RNN_SUITE_REQUIRE_SERVICES") == "1"


def require(available, what, hint):
    """Skips the calling test when `what` is not `available`, with a reason naming `hint` (the
    package or setting that provides it); fails under RNN_SUITE_REQUIRE_SERVICES=1."""
    import pytest

    if available:
        return
    message = f"{what}: not found; {hint}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (RNN_SUITE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


DATA_AVAILABLE = (SHARED_DATA / "atis" / "train" / "seq.in").is_file()
DATA_MISSING = (
    f"the local data sets: not found in {SHARED_DATA}; set RNN_SUITE_DATA to the folder with atis/, snips/, "
    "fsdd/, ... (e.g. ../shared/data)"
)


def new_store(folder, experiment):
    """A SQLite MLflow store in `folder`, with `experiment`'s artifacts there too.

    (MLflow's default artifact root for a SQLite store is ./mlruns of the current folder.) The
    store starts as a copy of an empty one made once per test process: creating MLflow's tables
    runs its migrations, about 3 s a store, which dozens of tests would otherwise each pay.
    """
    import shutil

    import mlflow

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_empty_store(), folder / "mlflow.db")
    tracking_uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.create_experiment(experiment, artifact_location=str(folder / "artifacts"))
    return tracking_uri


@functools.cache
def _empty_store():
    """A store with MLflow's tables and no run, made once per process (`new_store` copies it)."""
    import tempfile

    from mlflow.tracking import MlflowClient

    path = Path(tempfile.mkdtemp(prefix="rnn-suite-empty-store-")) / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # creates and migrates the tables
    return path


def runs_of(tracking_uri, experiment):
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


def single_run(tracking_uri, experiment):
    runs = runs_of(tracking_uri, experiment)
    assert len(runs) == 1, runs
    return runs[0]


def cli(app, *arguments, **kwargs):
    """Runs `python -m apps.APP ARGUMENTS` in a fresh process, as a user would."""
    import subprocess
    import sys

    env = {**os.environ, "RNN_SUITE_DATA": str(SHARED_DATA), "PYTHONPATH": str(REPOSITORY)}
    return subprocess.run(
        [sys.executable, "-m", f"apps.{app}", *arguments],
        cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=300, **kwargs,
    )  # fmt: skip


def write_reviews_csv(path, per_class=120):
    """The first and last `per_class` MR sentences (one class each) as a text,label CSV."""
    import csv

    from pipelines.classification import load_text_dataset

    examples = load_text_dataset("mr", SHARED_DATA).examples
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for example in examples[:per_class] + examples[-per_class:]:
            writer.writerow([example.text, example.label])
    return path


def run_main(app, *arguments, capsys):
    """`python -m apps.APP ARGUMENTS` in this process (the module calls exactly this): for the
    error paths, which need no fresh process and would pay TensorFlow's import each time."""
    from types import SimpleNamespace

    from apps import runner

    code = runner.main(app, [str(a) for a in arguments])
    captured = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)


def write_inspec_subset(path, documents):
    """Inspec's first `documents` abstracts as a LIAAD zip (`liaad:PATH`): split in halves and
    quarters, a tagger trains on it in seconds."""
    import re
    import zipfile

    with zipfile.ZipFile(SHARED_DATA / "keyphrase" / "Inspec.zip") as source, zipfile.ZipFile(path, "w") as target:
        ids = sorted({m.group(1) for n in source.namelist() if (m := re.search(r"docsutf8/(\d+)\.txt$", n))}, key=int)
        for doc_id in ids[:documents]:
            for name in (f"Inspec/docsutf8/{doc_id}.txt", f"Inspec/keys/{doc_id}.key"):
                target.writestr(name, source.read(name))
    return path


def tune_and_evaluate(app, tmp_path, train_flags, evaluate_flags):
    """A one-trial tuning job of `app` on small data (`train_flags`), then `evaluate` of the
    model the job logged (`evaluate_flags` name the same data), which must reproduce the job's
    `best_test_*` metrics: the model a tuning job logs is the model `train` would log, finished on
    the same path. Returns the job's parent run and the tracking URI, for the app's own checks."""
    import mlflow
    import pytest

    from apps import runner, saved

    tracking_uri = new_store(tmp_path, "tuning")
    space = tmp_path / "space.yaml"
    space.write_text("cell: {fixed: gru}\n")
    code = runner.main(app, [
        "tune", "--epochs", "1", "--max-trials", "1", "--verbose", "0", "--data-dir", str(SHARED_DATA),
        *train_flags, "--search-space", str(space), "--tracking-uri", tracking_uri, "--experiment", "tuning",
        "--tuner-dir", str(tmp_path / "tuning"),
    ])  # fmt: skip
    assert code == 0
    parent = next(r for r in runs_of(tracking_uri, "tuning") if "tuning_job" in r.data.tags)
    best_test = {k[len("best_test_") :]: v for k, v in parent.data.metrics.items() if k.startswith("best_test_")}
    args = runner.build_parser(app).parse_args([
        "evaluate", "--model", f"runs:/{parent.info.run_id}/model", "--data-dir", str(SHARED_DATA),
        *evaluate_flags, "--tracking-uri", tracking_uri,
    ])  # fmt: skip
    metrics = saved.evaluate(app, args)
    assert metrics and set(metrics) <= set(best_test), (metrics, best_test)
    for key, value in metrics.items():
        assert value == pytest.approx(best_test[key], abs=1e-9), key
    # Finished like a training run: its learning curve and reports too, beside the trial plot.
    artifacts = {a.path for a in mlflow.MlflowClient(tracking_uri).list_artifacts(parent.info.run_id)}
    assert {"learning_curve.png", "trials.png", "reports"} <= artifacts, artifacts
    return parent, tracking_uri


def write_atis_subset(folder, sentences=(600, 100, 100)):
    """The first train, valid and test sentences of ATIS as a data folder (`--data-dir FOLDER`)."""
    from benchmarks.common import write_atis_subset as write

    return write(SHARED_DATA, folder, sentences)
