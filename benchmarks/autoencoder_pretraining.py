"""Dai & Le's comparison on MR: the sentiment network alone, and started from a text auto-encoder.

    python -m benchmarks.autoencoder_pretraining --encoder runs:/RUN_ID/model   # train what is missing, print
    python -m benchmarks.autoencoder_pretraining --encoder runs:/RUN_ID/model --table-only

Both are `python -m apps.sentiment train --dataset mr --cv 10 --ngrams 0 --patience 2` (the network
alone, no n-gram classifier; fold k trained with seed SEED + k in both), the second with
`--pretrained-encoder ENCODER`. The encoder must have been trained on no MR text (the text
auto-encoder's default data holds none), so that no fold's test sentences were seen. Runs are
CONFIG-sSEED in `--experiment` (default `autoencoder_pretraining`); finished ones are not trained again.
"""

import argparse
import statistics
import sys

import mlflow

from benchmarks.common import sweep, sweep_options

BASE = ["--dataset", "mr", "--cv", "10", "--ngrams", "0", "--patience", "2"]
GOAL_POINTS = 2.0


def fold_accuracies(parent):
    """{fold: test accuracy (%)} of a cross-validation's finished folds (all, or those done so far)."""
    children = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        output_format="list",
    )
    return {
        int(r.data.tags.get("cv_fold", 0)): 100 * r.data.metrics["test_accuracy"]
        for r in children
        if r.info.status == "FINISHED" and "test_accuracy" in r.data.metrics
    }


def latest_runs(experiment):
    """{run name: the latest run of that name}, whatever its status (an unfinished CV's folds count)."""
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list", order_by=["start_time ASC"])
    return {r.info.run_name: r for r in runs}


def main(argv=None):
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--encoder", required="--table-only" not in (argv or sys.argv), help="the auto-encoder")
    known, rest = own.parse_known_args(argv)
    configurations = {"mr-network": [], "mr-pretrained": ["--pretrained-encoder", known.encoder or "?"]}
    options = sweep_options(__doc__, "autoencoder_pretraining", [0], configurations, rest)
    chosen = {k: v for k, v in configurations.items() if not options.only or k in options.only}
    sweep("sentiment", chosen, options, BASE)
    runs = latest_runs(options.experiment)
    print("\n| configuration | seed | status | folds done | accuracy (%) per fold |\n| --- | --- | --- | --- | --- |")
    found = {}
    for name in configurations:
        for seed in options.seeds:
            run = runs.get(f"{name}-s{seed}")
            if run is None:
                print(f"| {name} | {seed} | not run | | |")
                continue
            found[name] = fold_accuracies(run)
            folds = ", ".join(f"{k}: {a:.2f}" for k, a in sorted(found[name].items()))
            print(f"| {name} | {seed} | {run.info.status} | {len(found[name])} | {folds} |")
    if len(found) == 2:
        paired = sorted(set(found["mr-network"]) & set(found["mr-pretrained"]))
        if paired:
            gains = [found["mr-pretrained"][k] - found["mr-network"][k] for k in paired]
            a = statistics.mean(found["mr-network"][k] for k in paired)
            b = statistics.mean(found["mr-pretrained"][k] for k in paired)
            verdict = "met" if statistics.mean(gains) >= GOAL_POINTS else "missed"
            print(f"\nfolds {paired}: network {a:.2f}, pretrained {b:.2f}, gain {statistics.mean(gains):+.2f} "
                  f"(per fold {', '.join(f'{g:+.2f}' for g in gains)}; goal ≥ {GOAL_POINTS}: {verdict}"
                  f"{'' if len(paired) == 10 else ', on these folds only'})")  # fmt: skip


if __name__ == "__main__":
    main()
