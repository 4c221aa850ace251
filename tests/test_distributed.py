"""Multi-worker training (`train --distribute multi-worker`): real processes on 127.0.0.1."""

import os
import re
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from apps import runner
from apps.app import UserError
from apps.distributed import checked_workers
from apps.slot_filling import APP
from tests.servers import free_port
from tests.support import REPOSITORY, SHARED_DATA, new_store, single_run, write_atis_subset

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "atis").is_dir(), reason="needs ATIS in RNN_SUITE_DATA")


@pytest.mark.parametrize(
    "flags, message",
    [(["--distribute", "multi-worker"], "needs --workers"),
     (["--distribute", "multi-worker", "--workers", "a:1,b", "--worker-index", "0"], "'b' is not HOST:PORT"),
     (["--distribute", "multi-worker", "--workers", "a:1,b:2", "--worker-index", "2"], "0 to 1"),
     (["--distribute", "multi-worker", "--workers", "a:1,a:1", "--worker-index", "0"], "twice"),
     (["--workers", "a:1,b:2", "--worker-index", "0"], "go with --distribute multi-worker"),
     (["--distribute", "mirrored", "--ema", "0.99"], "--ema is not supported with --distribute")],
)  # fmt: skip
def test_bad_worker_flags_say_what_is_wrong(flags, message):
    args = runner.build_parser(APP).parse_args(["train", *flags])
    with pytest.raises(UserError, match=message):
        checked_workers(args)


def start_workers(tmp_path, tracking_uri, ports, epochs, extra=()):
    data = write_atis_subset(tmp_path / "data", sentences=(320, 60, 60))
    workers = ",".join(f"127.0.0.1:{port}" for port in ports)
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "PYTHONUNBUFFERED": "1"}
    processes = []
    for index in range(len(ports)):
        command = [
            sys.executable, "-m", "apps.slot_filling", "train", "--data-dir", str(data), "--epochs", str(epochs),
            "--units", "16", "--embedding-dim", "16", "--batch-size", "16", "--tracking-uri", tracking_uri,
            "--checkpoint-dir", str(tmp_path / "checkpoints"), "--verbose", "2", "--distribute", "multi-worker",
            "--workers", workers, "--worker-index", str(index), *(extra if index == 0 else ()),
        ]  # fmt: skip
        log = open(tmp_path / f"worker{index}-{time.monotonic_ns()}.log", "w+")
        processes.append(
            (subprocess.Popen(command, cwd=REPOSITORY, env=env, stdout=log, stderr=subprocess.STDOUT), log)
        )
    return processes


def finish(processes, timeout=600):
    outputs = []
    for process, log in processes:
        process.wait(timeout=timeout)
        log.seek(0)
        outputs.append(log.read())
        log.close()
    return outputs


def digest(output):
    found = re.findall(r"training done, weights ([0-9a-f]{16})", output)
    assert found, output[-3000:]
    return found[-1]


def test_two_workers_train_to_identical_weights_and_the_chief_logs_one_finished_run(tmp_path):
    tracking_uri = new_store(tmp_path, "slot_filling")
    processes = start_workers(tmp_path, tracking_uri, [free_port(), free_port()], epochs=1)
    chief, worker = finish(processes)
    assert [p.returncode for p, _ in processes] == [0, 0], (chief[-3000:], worker[-3000:])
    assert digest(chief) == digest(worker)
    run = single_run(tracking_uri, "slot_filling")  # exactly one run: the chief's
    assert run.info.status == "FINISHED"
    assert run.data.tags["distribute"] == "multi-worker" and run.data.tags["workers"] == "2"
    assert run.data.params["global_batch_size"] == "32" and run.data.params["batch_size"] == "16"
    assert "val_slot_f1" in run.data.metrics and "test_slot_f1" in run.data.metrics
    # The other worker tracks nothing and writes nothing: no store of its own in its folder (the
    # repository), no checkpoint beside the chief's.
    assert "MLflow run" not in worker and not (REPOSITORY / "mlflow.db").exists()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [run.info.run_id]


def test_a_killed_worker_fails_the_job_clearly_and_starting_the_workers_again_resumes_it(tmp_path):
    tracking_uri = new_store(tmp_path, "slot_filling")
    ports = [free_port(), free_port()]
    processes = start_workers(tmp_path, tracking_uri, ports, epochs=3)
    deadline = time.time() + 300
    while not list((tmp_path / "checkpoints").glob("*/backup")):  # epoch 1 is over and backed up
        assert time.time() < deadline and all(p.poll() is None for p, _ in processes)
        time.sleep(0.5)
    processes[1][0].kill()
    chief, _ = finish(processes)
    assert processes[0][0].returncode == 1, chief[-3000:]
    assert "error: a worker stopped answering" in chief and "Traceback" not in chief
    run = single_run(tracking_uri, "slot_filling")
    assert run.info.status == "FAILED"
    processes = start_workers(tmp_path, tracking_uri, ports, epochs=3, extra=("--resume", run.info.run_id))
    chief, worker = finish(processes)
    assert [p.returncode for p, _ in processes] == [0, 0], (chief[-3000:], worker[-3000:])
    assert digest(chief) == digest(worker)
    run = single_run(tracking_uri, "slot_filling")
    history = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "val_slot_f1")
    assert run.info.status == "FINISHED" and sorted({m.step for m in history}) == [0, 1, 2]


def test_mirrored_trains_in_one_process_with_the_runners_callbacks(tmp_path):
    """`--distribute mirrored` on this CPU: one replica, the same loop without broadcasts."""
    data = write_atis_subset(tmp_path / "data", sentences=(200, 40, 40))
    tracking_uri = new_store(tmp_path, "slot_filling")
    code = runner.main(APP, [
        "train", "--data-dir", str(data), "--epochs", "2", "--units", "16", "--embedding-dim", "16",
        "--distribute", "mirrored", "--tracking-uri", tracking_uri, "--checkpoint-dir", str(tmp_path / "checkpoints"),
        "--verbose", "0",
    ])  # fmt: skip
    assert code == 0
    run = single_run(tracking_uri, "slot_filling")
    assert run.info.status == "FINISHED" and run.data.tags["distribute"] == "mirrored"
    assert run.data.tags["workers"] == "1" and run.data.params["global_batch_size"] == run.data.params["batch_size"]
    history = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "val_slot_f1")
    assert sorted(m.step for m in history) == [0, 1] and "test_slot_f1" in run.data.metrics
