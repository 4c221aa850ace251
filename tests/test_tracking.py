"""Tracking helpers of the shared runner."""

import mlflow

from apps import tracking
from tests.support import new_store, runs_of


def test_skips_are_logged_inside_a_run_and_start_no_run_outside_one(tmp_path, capsys):
    uri = new_store(tmp_path, "skips")
    tracking.log_skipped({"empty text": 2, "no key file here": 1}, words=2)  # as a tuner loading data
    assert mlflow.active_run() is None and runs_of(uri, "skips") == []
    assert "skipped: 2 empty text, 1 no key file here" in capsys.readouterr().out
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("skips").experiment_id) as run:
        tracking.log_skipped({"empty text": 2, "no key file here": 1}, words=2)
    logged = mlflow.get_run(run.info.run_id).data.metrics
    assert logged == {"skipped_empty_text": 2, "skipped_no_key": 1}
