"""Tracking helpers of the shared runner."""

import subprocess
import sys
import time

import mlflow

from apps import tracking
from tests.support import REPOSITORY, new_store, runs_of


def test_skips_are_logged_inside_a_run_and_start_no_run_outside_one(tmp_path, capsys):
    uri = new_store(tmp_path, "skips")
    tracking.log_skipped({"empty text": 2, "no key file here": 1}, words=2)  # as a tuner loading data
    assert mlflow.active_run() is None and runs_of(uri, "skips") == []
    assert "skipped: 2 empty text, 1 no key file here" in capsys.readouterr().out
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("skips").experiment_id) as run:
        tracking.log_skipped({"empty text": 2, "no key file here": 1}, words=2)
    logged = mlflow.get_run(run.info.run_id).data.metrics
    assert logged == {"skipped_empty_text": 2, "skipped_no_key": 1}


FIRST_USE = """
import sys, time
import mlflow
from apps import tracking
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
tracking.configure(sys.argv[1], "together")
with mlflow.start_run():
    mlflow.log_metric("x", 1.0)
"""


def test_trainings_started_together_on_a_new_sqlite_store_all_get_their_run(tmp_path):
    """Without the lock, 3 of 4 such processes failed in MLflow's table migration (3 tries of 3)."""
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    start = time.time() + 8  # after every process has imported MLflow
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_USE, uri, str(start)], cwd=REPOSITORY, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    assert len(runs_of(uri, "together")) == 4
