"""Training speed of slot filling with one and with two local workers (`train --distribute multi-worker`).

    python -m benchmarks.distributed                     # 1 and 2 workers on 127.0.0.1, 3 epochs each
    python -m benchmarks.distributed --workers 1 2 4 --epochs 4 --sentences 2000

For each worker count, starts that many `python -m apps.slot_filling train --distribute
multi-worker` processes on 127.0.0.1 (each `--batch-size` examples a step, so the global batch
grows with the workers), waits for the job and reads the chief's `train_examples_per_s` (every
worker's examples per second of training, evaluation apart) from its MLflow run: the median over
the epochs after the first (which traces the step function). On a machine with fewer cores than
workers x TensorFlow's threads, the workers share the cores: the figure then says what the
collectives cost, not what more machines would give.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def run_job(folder, data_dir, workers, args):
    """Trains one job of `workers` local processes in `folder`; the chief's run's figures."""
    import mlflow

    from benchmarks.serving import free_port

    folder.mkdir(parents=True)
    tracking_uri = f"sqlite:///{folder}/mlflow.db"
    addresses = ",".join(f"127.0.0.1:{free_port()}" for _ in range(workers))
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    processes = []
    for index in range(workers):
        command = [
            sys.executable, "-m", "apps.slot_filling", "train", "--data-dir", str(data_dir), "--epochs", str(args.epochs),
            "--batch-size", str(args.batch_size), "--tracking-uri", tracking_uri, "--experiment", "distributed-benchmark",
            "--checkpoint-dir", str(folder / "checkpoints"), "--verbose", "0", "--distribute", "multi-worker",
            "--workers", addresses, "--worker-index", str(index), *args.train_flags,
        ]  # fmt: skip
        log = open(folder / f"worker{index}.log", "w")
        processes.append(subprocess.Popen(command, cwd=REPOSITORY, env=env, stdout=log, stderr=subprocess.STDOUT))
    for index, process in enumerate(processes):
        if process.wait() != 0:
            raise SystemExit(f"worker {index} of {workers} failed; its log: {folder / f'worker{index}.log'}")
    client = mlflow.MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("distributed-benchmark").experiment_id])
    speeds = [
        m.value
        for m in sorted(client.get_metric_history(run.info.run_id, "train_examples_per_s"), key=lambda m: m.step)
    ]
    later = speeds[1:] or speeds
    return {"workers": workers, "global_batch": args.batch_size * workers, "examples_per_s": statistics.median(later),
            "epochs_measured": len(later), "val_slot_f1": run.data.metrics.get("best_val_slot_f1")}  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each job (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="each worker's batch (default: %(default)s)")
    parser.add_argument("--sentences", type=int, default=1000, help="ATIS training sentences (default: %(default)s)")
    parser.add_argument("--data-dir", help="folder holding atis/ (default: $RNN_SUITE_DATA)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per job")
    parser.add_argument("train_flags", nargs="*", help="more train flags, after --")
    args = parser.parse_args(argv)

    from benchmarks.common import device, print_results, write_atis_subset

    source = Path(args.data_dir or os.environ.get("RNN_SUITE_DATA", REPOSITORY.parent / "shared" / "data"))
    results = []
    with tempfile.TemporaryDirectory() as temporary:
        data_dir = write_atis_subset(source, Path(temporary) / "data", (args.sentences, 200, 200))
        for workers in args.workers:
            print(f"{workers} worker(s)...", file=sys.stderr, flush=True)
            results.append(run_job(Path(temporary) / f"job{workers}", data_dir, workers, args))
    base = results[0]["examples_per_s"]
    for result in results:
        result.update(speedup=result["examples_per_s"] / base, device=device(), cores=os.cpu_count())
    print_results(
        results,
        {
            "workers": "workers",
            "global batch": "global_batch",
            "examples/s": "examples_per_s",
            "× first row": "speedup",
            "epochs measured": "epochs_measured",
        },  # fmt: skip
        args.json,
        heading=f"slot filling, {args.sentences} ATIS sentences, local workers on 127.0.0.1; {device()}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
