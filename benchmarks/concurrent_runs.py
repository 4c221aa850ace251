"""Many trainings started at once against one local MLflow store: are any runs or metrics lost?

    python -m benchmarks.concurrent_runs             # 8 short sentiment trainings into a temporary SQLite store
    python -m benchmarks.concurrent_runs --runs 16 --tracking-uri sqlite:///load.db

Each run is `python -m apps.sentiment train` on 80 MR sentences (2 epochs, a tiny
model), all started together. Prints the wall time of each and of the whole, and
how many runs finished with their metrics and per-epoch history. Exits 1 if any
was lost. `tests/test_concurrent_runs.py` (marked slow) runs it with 8.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
METRICS = ("test_accuracy", "test_macro_f1", "val_accuracy", "loss")


def start_runs(runs, folder, tracking_uri=None, experiment="concurrent"):
    """Starts `runs` trainings at once; returns a report dict (runs lost, times, outputs)."""
    import mlflow

    sys.path.insert(0, str(REPOSITORY))
    from tests.support import SHARED_DATA, write_reviews_csv

    folder = Path(folder)
    tracking_uri = tracking_uri or f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=str(folder / "artifacts"))
    reviews = write_reviews_csv(folder / "reviews.csv", per_class=40)
    # One thread each: the processes share the cores, as a team's runs on one machine would.
    env = {**os.environ, "RNN_SUITE_DATA": str(SHARED_DATA), "PYTHONPATH": str(REPOSITORY),
           "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}  # fmt: skip
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apps.sentiment",
                "train",
                "--dataset",
                f"csv:{reviews}",
                "--seed",
                str(seed),
                "--embedding-dim",
                "8",
                "--units",
                "8",
                "--max-length",
                "20",
                "--epochs",
                "2",
                "--verbose",
                "0",
                "--tracking-uri",
                tracking_uri,
                "--experiment",
                experiment,
                "--checkpoint-dir",
                str(folder / "checkpoints"),
            ],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for seed in range(runs)
    ]
    outputs, seconds = [], []
    for process in processes:
        outputs.append(process.communicate(timeout=1200)[0])
        seconds.append(time.perf_counter() - started)
    client = mlflow.MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    complete = set()
    for run in client.search_runs([experiment_id]):
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        if (run.info.status == "FINISHED" and set(METRICS) <= set(run.data.metrics)
                and sorted(m.step for m in history) == [0, 1]):  # fmt: skip
            complete.add(int(run.data.params["seed"]))
    return {
        "runs": runs,
        "complete": sorted(complete),
        "lost": sorted(set(range(runs)) - complete),
        "failed_processes": [s for s, p in enumerate(processes) if p.returncode != 0],
        "outputs": outputs,
        "seconds": seconds,
        "total_seconds": time.perf_counter() - started,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8, help="trainings started at once (default: %(default)s)")
    parser.add_argument("--tracking-uri", help="MLflow store (default: SQLite in a temporary folder)")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rnn-suite-concurrent-") as folder:
        report = start_runs(options.runs, folder, options.tracking_uri)
    for seed, seconds in enumerate(report["seconds"]):
        state = "lost" if seed in report["lost"] else "complete"
        print(f"run {seed}: {state}, done after {seconds:.1f} s")
    print(f"{len(report['complete'])}/{report['runs']} runs complete, {len(report['lost'])} lost; "
          f"all done in {report['total_seconds']:.1f} s on {os.cpu_count()} cores")  # fmt: skip
    for seed in report["failed_processes"]:
        print(f"\nrun {seed} failed:\n{report['outputs'][seed][-2000:]}", file=sys.stderr)
    return 1 if report["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
