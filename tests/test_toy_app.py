"""The minimal app of docs/writing-an-app.md through the real runner: train, evaluate, predict,
tune, an interrupted training resumed, --cv; on data the test writes, seconds to train."""

import io
import os
import signal
import subprocess
import sys
import tempfile
import zipfile

import h5py
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from apps import runner, saved
from tests.support import REPOSITORY, new_store, run_main, runs_of, single_run
from tests.toy_app import APP


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """1500 sequences of 3-12 digits, labelled by whether their mean is above 4.5."""
    folder = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(7)
    lines = []
    for _ in range(1500):
        digits = rng.integers(0, 10, size=rng.integers(3, 13))
        lines.append(("high" if digits.mean() > 4.5 else "low") + "\t" + " ".join(map(str, digits)))
    (folder / "digits.tsv").write_text("\n".join(lines) + "\n")
    return folder


def common(tmp_path, data_dir):
    tracking_uri = new_store(tmp_path, "toy")
    return tracking_uri, [
        "--data-dir", str(data_dir), "--tracking-uri", tracking_uri, "--experiment", "toy",
        "--checkpoint-dir", str(tmp_path / "checkpoints"), "--verbose", "0",
    ]  # fmt: skip


def test_train_evaluate_and_predict(tmp_path, data_dir, capsys, monkeypatch):
    tracking_uri, flags = common(tmp_path, data_dir)
    assert runner.main(APP, ["train", *flags]) == 0
    run = single_run(tracking_uri, "toy")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] > 0.7  # a mean over a few digits is easy to learn
    assert run.data.params["cell"] == "gru" and run.data.tags["app"] == "toy"
    artifacts = {a.path for a in MlflowClient(tracking_uri).list_artifacts(run.info.run_id)}
    assert "learning_curve.png" in artifacts
    model = f"runs:/{run.info.run_id}/model"
    args = runner.build_parser(APP).parse_args(
        ["evaluate", "--model", model, "--data-dir", str(data_dir), "--tracking-uri", tracking_uri]
    )
    assert saved.evaluate(APP, args)["accuracy"] == pytest.approx(run.data.metrics["test_accuracy"], abs=1e-12)
    result = run_main(
        APP, "predict", "--model", model, "--tracking-uri", tracking_uri, "9 9 8 9", "0 1 0 2", capsys=capsys
    )
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines() if "  " in line][-2:] == ["high", "low"]
    bad = run_main(APP, "predict", "--model", model, "--tracking-uri", tracking_uri, "nine", capsys=capsys)
    assert bad.returncode == 2 and "expected digits" in bad.stderr
    # The saved serving model holds the trained network's weights but not its optimizer's state.
    with zipfile.ZipFile(tmp_path / "checkpoints" / run.info.run_id / "model.keras") as archive:
        with h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as weights:
            names = []
            weights.visit(names.append)
    assert any("layers" in n for n in names) and not any("optimizer" in n for n in names)
    # A model read from the store is loaded from a download that is removed, not left behind.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert saved.load_model(model, tracking_uri).name == "toy"
    assert list(scratch.iterdir()) == []


def test_an_interrupted_training_resumes_where_it_stopped(tmp_path, data_dir):
    tracking_uri, flags = common(tmp_path, data_dir)
    flags[flags.index("--verbose") + 1] = "2"
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.toy_app", "train", "--epochs", "3", "--batch-size", "8", *flags],
        cwd=REPOSITORY, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = []
    for line in process.stdout:
        output.append(line)
        if line.startswith("Epoch 2/3"):  # epoch 1 is over and backed up
            process.send_signal(signal.SIGTERM)
            break
    output = "".join(output) + process.communicate(timeout=120)[0]
    assert process.returncode == 130, output
    run = single_run(tracking_uri, "toy")
    assert run.info.status == "KILLED" and f"train --resume {run.info.run_id}" in output
    resumed = ["--tracking-uri", tracking_uri, "--checkpoint-dir", str(tmp_path / "checkpoints"), "--verbose", "0"]
    assert runner.main(APP, ["train", "--resume", run.info.run_id, *resumed]) == 0
    run = single_run(tracking_uri, "toy")
    history = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "loss")
    assert run.info.status == "FINISHED" and sorted(m.step for m in history) == [0, 1, 2]


def test_cross_validation_is_a_parent_run_with_a_child_per_fold(tmp_path, data_dir):
    tracking_uri, flags = common(tmp_path, data_dir)
    assert runner.main(APP, ["train", "--cv", "3", "--epochs", "1", *flags]) == 0
    runs = runs_of(tracking_uri, "toy")
    parent = next(r for r in runs if "cv_folds" in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    folds = [r.data.metrics["test_accuracy"] for r in children]
    assert len(children) == 3 and parent.data.metrics["cv_accuracy"] == pytest.approx(np.mean(folds), abs=1e-12)
    assert parent.data.metrics["cv_accuracy_std"] == pytest.approx(np.std(folds, ddof=1), abs=1e-12)


def test_a_tuning_job_logs_the_best_model_as_train_would(tmp_path, data_dir):
    tracking_uri, flags = common(tmp_path, data_dir)
    space = tmp_path / "space.yaml"
    space.write_text("cell: {choice: [gru, elman]}\nunits: {choice: [8, 16]}\n")
    tune = [
        "tune",
        "--max-trials",
        "2",
        "--epochs",
        "2",
        "--search-space",
        str(space),
        "--tuner-dir",
        str(tmp_path / "tuning"),
    ]
    flags = [f for f in flags if f != "--checkpoint-dir" and f != str(tmp_path / "checkpoints")]
    assert runner.main(APP, [*tune, *flags]) == 0
    runs = runs_of(tracking_uri, "toy")
    parent = next(r for r in runs if "tuning_job" in r.data.tags)
    assert len([r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]) == 2
    args = runner.build_parser(APP).parse_args([
        "evaluate", "--model", f"runs:/{parent.info.run_id}/model", "--data-dir", str(data_dir), "--tracking-uri", tracking_uri,
    ])  # fmt: skip
    assert saved.evaluate(APP, args)["accuracy"] == pytest.approx(parent.data.metrics["best_test_accuracy"], abs=1e-12)


def test_bad_data_is_a_clear_error_naming_file_and_line(tmp_path, capsys):
    (tmp_path / "digits.tsv").write_text("high\t1 2 3\nmedium\t4 5\n")
    result = run_main(
        APP, "train", "--data-dir", tmp_path, "--tracking-uri", f"sqlite:///{tmp_path}/m.db", capsys=capsys
    )
    assert result.returncode == 2 and "digits.tsv, line 2" in result.stderr and "Traceback" not in result.stderr


def test_a_model_trained_by_python_m_names_its_app_module_and_loads_through_mlflow(tmp_path, data_dir):
    """`python -m tests.toy_app train` runs the app as `__main__`: the logged model must name the
    module a server can import, and load and predict through MLflow's pyfunc."""
    import pandas as pd

    tracking_uri, flags = common(tmp_path, data_dir)
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    result = subprocess.run([sys.executable, "-m", "tests.toy_app", "train", "--epochs", "1", *flags], cwd=REPOSITORY,
                            env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    uri = f"runs:/{single_run(tracking_uri, 'toy').info.run_id}/model"
    info = mlflow.models.get_model_info(uri)
    assert info.flavors["python_function"]["config"] == {"app": "tests.toy_app"}
    (record,) = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"text": ["9 9 8 9"]}))
    assert record["text"] == "9 9 8 9" and record["label"] in ("low", "high")
