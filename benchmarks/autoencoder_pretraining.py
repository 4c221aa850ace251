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

from benchmarks.common import finished_runs, sweep, sweep_options

BASE = ["--dataset", "mr", "--cv", "10", "--ngrams", "0", "--patience", "2"]
GOAL_POINTS = 2.0


def fold_accuracies(parent):
    children = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        output_format="list",
    )
    ordered = sorted(children, key=lambda r: int(r.data.tags.get("cv_fold", 0)))
    return [100 * r.data.metrics["test_accuracy"] for r in ordered if "test_accuracy" in r.data.metrics]


def main(argv=None):
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--encoder", required="--table-only" not in (argv or sys.argv), help="the auto-encoder")
    known, rest = own.parse_known_args(argv)
    configurations = {"mr-network": [], "mr-pretrained": ["--pretrained-encoder", known.encoder or "?"]}
    options = sweep_options(__doc__, "autoencoder_pretraining", [0], configurations, rest)
    chosen = {k: v for k, v in configurations.items() if not options.only or k in options.only}
    sweep("sentiment", chosen, options, BASE)
    runs = finished_runs(options.experiment)
    print("\n| configuration | seed | 10-fold CV accuracy (%) | folds |\n| --- | --- | --- | --- |")
    means = {}
    for name in configurations:
        for seed in options.seeds:
            run = runs.get(f"{name}-s{seed}")
            if run is None:
                print(f"| {name} | {seed} | not run | |")
                continue
            folds = fold_accuracies(run)
            means[name] = statistics.mean(folds)
            print(f"| {name} | {seed} | {means[name]:.2f} ± {statistics.stdev(folds):.2f} | "
                  f"{', '.join(f'{a:.2f}' for a in folds)} |")  # fmt: skip
    if len(means) == 2:
        gain = means["mr-pretrained"] - means["mr-network"]
        verdict = "met" if gain >= GOAL_POINTS else "missed"
        print(f"\npretraining adds {gain:+.2f} points (goal ≥ {GOAL_POINTS}: {verdict})")


if __name__ == "__main__":
    main()
