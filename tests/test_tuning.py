"""Tuning jobs: keras-tuner searches tracked in MLflow, resumable, distributed over gRPC."""

import os
import subprocess
import sys

import mlflow
import pandas as pd
import pytest

from apps import runner
from apps.sentiment import APP
from apps.tuning import SearchSpaceError, check_space, load_search_space
from tests.servers import free_port
from tests.support import REPOSITORY, SHARED_DATA, new_store, run_main, runs_of, write_reviews_csv

# The network alone (--ngrams 0): what is tested here is the tuning, not sentiment's n-gram fusion.
SMALL = ["--embedding-dim", "16", "--batch-size", "32", "--learning-rate", "0.01", "--max-length", "30",
         "--ngrams", "0", "--epochs", "1", "--verbose", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """240 MR sentences as a CSV: small enough for trials of a few seconds."""
    return write_reviews_csv(tmp_path_factory.mktemp("data") / "reviews.csv")


def write_space(folder, text):
    path = folder / "space.yaml"
    path.write_text(text)
    return path


def tune_arguments(tmp_path, reviews, space, *extra):
    return [
        "tune", "--dataset", f"csv:{reviews}", *SMALL, "--search-space", str(space),
        "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--experiment", "tuning",
        "--tuner-dir", str(tmp_path / "tuning"), *extra,
    ]  # fmt: skip


def parent_and_trials(tmp_path):
    runs = runs_of(f"sqlite:///{tmp_path}/mlflow.db", "tuning")
    parents = [r for r in runs if "tuning_job" in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], trials


def test_unknown_hyperparameters_are_errors_naming_them(tmp_path, capsys):
    space = write_space(tmp_path, "units: {int: [8, 16]}\nnum_unitz: {choice: [1, 2]}\n")
    with pytest.raises(SearchSpaceError, match="unknown hyperparameter 'num_unitz'"):
        load_search_space(space, {"units", "cell"})
    with pytest.raises(SearchSpaceError, match="units: give exactly one of"):
        check_space({"units": {"range": [1, 2]}}, {"units"})
    result = run_main(APP, "tune", "--search-space", space, "--tracking-uri", f"sqlite:///{tmp_path}/m.db",
                      capsys=capsys)  # fmt: skip
    assert result.returncode == 2 and "unknown hyperparameter 'num_unitz'" in result.stderr


def test_every_app_has_a_valid_default_search_space():
    from apps.keywords import APP as keywords
    from apps.slot_filling import APP as slot_filling
    from apps.speech_ctc import APP as speech

    for app in (slot_filling, APP, keywords, speech):
        args = runner.build_parser(app).parse_args(["tune"])
        check_space(app.search_space, set(vars(args)), app.name)
        assert {"cell", "units", "learning_rate"} <= set(app.search_space)


def test_a_failing_trial_is_failed_and_the_job_goes_on(tmp_path, reviews):
    new_store(tmp_path, "tuning")
    # 0 units is invalid; not first: keras-tuner builds the first choice to discover the space.
    space = write_space(tmp_path, "cell: {fixed: gru}\nunits: {choice: [8, 0]}\n")
    assert runner.main(APP, tune_arguments(tmp_path, reviews, space, "--max-trials", "2")) == 0
    parent, trials = parent_and_trials(tmp_path)
    by_units = {t.data.params["units"]: t for t in trials}
    assert by_units["0"].info.status == "FAILED" and "units" in by_units["0"].data.tags["error"]
    good = by_units["8"]
    assert good.info.status == "FINISHED" and good.data.params["cell"] == "gru"
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(good.info.run_id, "val_accuracy")] == [0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["best.units"] == "8"
    assert parent.data.metrics["best_val_accuracy"] == good.data.metrics["best_val_accuracy"]
    assert parent.data.metrics["trials_failed"] == 1 and parent.data.metrics["trials_completed"] == 1
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert "trials.png" in artifacts  # (the model is an MLflow 3 logged model, loaded below)
    model = mlflow.pyfunc.load_model(f"runs:/{parent.info.run_id}/model")
    (record,) = model.predict(pd.DataFrame({"text": ["a fine film"]}))
    assert set(record["probabilities"]) == {"neg", "pos"} and record["text"] == "a fine film"


def test_resume_continues_a_job_without_redoing_finished_trials(tmp_path, reviews):
    new_store(tmp_path, "tuning")
    space = write_space(tmp_path, "cell: {choice: [elman, gru]}\nunits: {int: [8, 24], step: 8}\n")
    arguments = tune_arguments(tmp_path, reviews, space, "--tuner", "bayesian")
    assert runner.main(APP, [*arguments, "--max-trials", "2"]) == 0
    first_parent, first_trials = parent_and_trials(tmp_path)
    assert len(first_trials) == 2
    # A second start without --resume would mix two jobs in one folder: refused.
    assert runner.main(APP, [*arguments, "--max-trials", "3"]) == 2
    assert runner.main(APP, [*arguments, "--max-trials", "3", "--resume"]) == 0
    parent, trials = parent_and_trials(tmp_path)
    assert parent.info.run_id == first_parent.info.run_id
    assert sorted(t.data.tags["trial_id"] for t in trials) == ["0", "1", "2"]  # one new trial
    assert all(t.info.status == "FINISHED" for t in trials)


def test_chief_and_two_workers_on_localhost_put_every_trial_under_one_parent(tmp_path, reviews):
    new_store(tmp_path, "tuning")
    space = write_space(tmp_path, "cell: {choice: [elman, gru, lstm]}\nunits: {int: [8, 32], step: 8}\n")
    oracle = f"127.0.0.1:{free_port()}"
    common = tune_arguments(tmp_path, reviews, space, "--max-trials", "2", "--oracle", oracle)
    env = {**os.environ, "RNN_SUITE_DATA": str(SHARED_DATA), "PYTHONPATH": str(REPOSITORY)}

    def start(*role):
        return subprocess.Popen(
            [sys.executable, "-m", "apps.sentiment", *common, *role], cwd=REPOSITORY, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    chief = start("--distributed", "chief")
    workers = [start("--distributed", "worker", "--worker-id", str(i)) for i in (1, 2)]
    outputs = {}
    try:
        for name, process in [("worker1", workers[0]), ("worker2", workers[1]), ("chief", chief)]:
            outputs[name] = process.communicate(timeout=400)[0]
            assert process.returncode == 0, f"{name}:\n{outputs[name][-3000:]}"
    finally:
        for process in [chief, *workers]:
            process.kill()
    parent, trials = parent_and_trials(tmp_path)
    assert parent.info.status == "FINISHED" and parent.data.params["distributed"] == "chief"
    assert len(trials) == 2 and all(t.info.status == "FINISHED" for t in trials)
    assert {t.data.tags["tuner_id"] for t in trials} <= {"worker-1", "worker-2"}
    assert "best.cell" in parent.data.tags
