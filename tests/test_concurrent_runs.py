"""Many trainings at once against one local MLflow store: none is lost.

Slow (about 2 minutes of 2 cores): out of the default run; `python -m
benchmarks.concurrent_runs` measures the same, `pytest -m slow` runs it.
"""

import pytest

from benchmarks.concurrent_runs import start_runs


@pytest.mark.slow
def test_eight_trainings_started_at_once_all_finish_with_their_metrics(tmp_path):
    report = start_runs(8, tmp_path)
    for seed in report["failed_processes"]:
        pytest.fail(f"run with seed {seed} failed:\n{report['outputs'][seed][-3000:]}")
    assert report["complete"] == list(range(8)), f"lost: {report['lost']}"
