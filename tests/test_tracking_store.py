"""Tracking stores MLflow would fail on or damage are refused plainly; a run whose process was
killed with kill -9 is marked KILLED; --resume refuses a run whose process is alive."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from apps import run_owners
from tests.support import REPOSITORY, new_store, run_main, runs_of
from tests.toy_app import APP as TOY


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(5)
    lines = []
    for _ in range(400):
        digits = rng.integers(0, 10, size=rng.integers(3, 13))
        lines.append(("high" if digits.mean() > 4.5 else "low") + "\t" + " ".join(map(str, digits)))
    (folder / "digits.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path, digits, capsys):
    store = tmp_path / "notes.db"
    store.write_text("my notes, not a database\n")
    result = run_main(TOY, "train", "--data-dir", digits, "--tracking-uri", f"sqlite:///{store}", capsys=capsys)
    assert result.returncode == 2 and "is not a SQLite database" in result.stderr and "Traceback" not in result.stderr
    assert store.read_text() == "my notes, not a database\n"


def test_another_programs_sqlite_database_gets_no_mlflow_tables(tmp_path, digits, capsys):
    store = tmp_path / "shop.db"
    with sqlite3.connect(store) as database:
        database.execute("CREATE TABLE customers (name TEXT)")
    result = run_main(TOY, "train", "--data-dir", digits, "--tracking-uri", f"sqlite:///{store}", capsys=capsys)
    assert result.returncode == 2 and "database of another program (tables customers)" in result.stderr
    with sqlite3.connect(store) as database:
        tables = [row[0] for row in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert tables == ["customers"]


def test_a_folder_given_as_the_store_is_refused(tmp_path, digits, capsys):
    result = run_main(TOY, "runs", "--tracking-uri", f"sqlite:///{tmp_path}", capsys=capsys)
    assert result.returncode == 2 and "is a folder" in result.stderr


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this process cannot write in: chmod for a user; for root, who writes anywhere,
    the immutable attribute (chattr +i, e2fsprogs)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("running as root, a read-only folder needs chattr +i (e2fsprogs) on a file system that has it")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_store_in_a_read_only_folder_is_refused(read_only_folder, digits, capsys):
    store = f"sqlite:///{read_only_folder}/mlflow.db"
    result = run_main(TOY, "train", "--data-dir", digits, "--tracking-uri", store, capsys=capsys)
    assert result.returncode == 2 and f"cannot write in {read_only_folder}" in result.stderr
    assert "Traceback" not in result.stderr and not (read_only_folder / "mlflow.db").exists()


def _wait_for_run(tracking_uri, seconds=180):
    client = MlflowClient(tracking_uri)
    deadline = time.time() + seconds
    while time.time() < deadline:
        runs = runs_of(tracking_uri, "toy")
        if runs and run_owners.OWNER_TAG in runs[0].data.tags and runs[0].data.metrics.get("loss") is not None:
            return client.get_run(runs[0].info.run_id)
        time.sleep(1)
    raise AssertionError("the training did not start in time")


def test_kill_9_leaves_no_run_running_and_resume_waits_for_a_live_owner(tmp_path, digits, capsys):
    tracking_uri = new_store(tmp_path, "toy")
    checkpoints = tmp_path / "checkpoints"
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.toy_app", "train", "--data-dir", str(digits), "--tracking-uri", tracking_uri,
         "--experiment", "toy", "--checkpoint-dir", str(checkpoints), "--epochs", "500", "--patience", "500",
         "--verbose", "0"],
        cwd=REPOSITORY, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        run = _wait_for_run(tracking_uri)
        run_id = run.info.run_id
        host, pid, _ = run_owners.parse_owner(run.data.tags[run_owners.OWNER_TAG])
        assert pid == process.pid and run.info.status == "RUNNING"
        resume = ["train", "--resume", run_id, "--tracking-uri", tracking_uri, "--checkpoint-dir", checkpoints]
        refused = run_main(TOY, *resume, capsys=capsys)
        assert refused.returncode == 2 and f"still being trained by process {pid}" in refused.stderr
        listed = run_main(TOY, "runs", "--tracking-uri", tracking_uri, "--experiment", "toy", capsys=capsys)
        assert f"{run_id}  RUNNING" in listed.stdout and "(alive)" in listed.stdout
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    assert MlflowClient(tracking_uri).get_run(run_id).info.status == "RUNNING"  # what kill -9 leaves
    listed = run_main(TOY, "runs", "--tracking-uri", tracking_uri, "--experiment", "toy", capsys=capsys)
    assert f"run {run_id} (" in listed.stdout and "is gone: marked KILLED" in listed.stdout
    assert f"{run_id}  KILLED" in listed.stdout
    assert MlflowClient(tracking_uri).get_run(run_id).info.status == "KILLED"


def test_a_run_of_another_host_is_listed_not_judged_and_can_be_marked_by_hand(tmp_path, capsys):
    tracking_uri = new_store(tmp_path, "toy")
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("toy").experiment_id) as run:
        mlflow.set_tag(run_owners.OWNER_TAG, "elsewhere:4242:99")
    client = MlflowClient(tracking_uri)
    client.update_run(run.info.run_id, status="RUNNING")
    listed = run_main(TOY, "runs", "--tracking-uri", tracking_uri, "--experiment", "toy", capsys=capsys)
    assert "elsewhere:4242:99 (another host)" in listed.stdout
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    refusal = run_owners.refuse_if_owned(client.get_run(run.info.run_id))
    assert "RUNNING on host elsewhere" in refusal and f"--mark-killed {run.info.run_id}" in refusal
    marked = run_main(
        TOY, "runs", "--tracking-uri", tracking_uri, "--experiment", "toy", "--mark-killed", run.info.run_id,
        capsys=capsys,
    )  # fmt: skip
    assert marked.returncode == 0 and client.get_run(run.info.run_id).info.status == "KILLED"


def test_a_reused_pid_is_not_taken_for_the_runs_owner():
    """The owner tag holds the process's start time: this pid with another start is gone."""
    host, pid, start = run_owners.parse_owner(run_owners.this_process())
    assert run_owners.owner_alive(f"{host}:{pid}:{start}") is True
    if start:
        assert run_owners.owner_alive(f"{host}:{pid}:{int(start) + 1}") is False
    assert run_owners.owner_alive(f"{host}:{2**22 + 7}:1") is False  # above Linux's largest pid
