"""Dai & Le's comparison on MR: the sentiment network alone, and started from a sequence auto-encoder.

    python -m benchmarks.autoencoder_pretraining --encoder runs:/RUN_ID/model   # train what is missing, print
    python -m benchmarks.autoencoder_pretraining --only mr-network mr-sa       # no text auto-encoder needed
    python -m benchmarks.autoencoder_pretraining --table-only

All are `python -m apps.sentiment train --dataset mr --cv 10 --ngrams 0 --patience 2` (the network
alone, no n-gram classifier; fold k trained with seed SEED + k in each): mr-network as it is,
mr-pretrained with `--pretrained-encoder ENCODER` (a text auto-encoder trained on other texts; it
must have seen no MR text, and the text auto-encoder's default data holds none, so that no fold's
test sentences were seen), mr-sa with `--autoencoder-epochs SA_EPOCHS` (the network's own encoder
trained as an auto-encoder on each fold's training texts first: Dai & Le's SA-LSTM), and
mr-pretrained-sa with both (the auto-encoder's weights, then SA_EPOCHS on the fold's texts). Runs are
CONFIG-sSEED in `--experiment` (default `autoencoder_pretraining`); finished ones are not trained again.
"""

import argparse
import statistics
import sys

import mlflow

from benchmarks.common import sweep, sweep_options

BASE = ["--dataset", "mr", "--cv", "10", "--ngrams", "0", "--patience", "2"]
GOAL_POINTS = 2.0
SA_EPOCHS = 2  # mr-sa: epochs of auto-encoder pretraining on each fold's own training texts


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
    own.add_argument("--encoder", help="the text auto-encoder of mr-pretrained (not needed for the others)")
    known, rest = own.parse_known_args(argv)
    configurations = {
        "mr-network": [],
        "mr-pretrained": ["--pretrained-encoder", known.encoder or "?"],
        "mr-sa": ["--autoencoder-epochs", str(SA_EPOCHS)],
        "mr-pretrained-sa": ["--pretrained-encoder", known.encoder or "?", "--autoencoder-epochs", str(SA_EPOCHS)],
    }
    options = sweep_options(__doc__, "autoencoder_pretraining", [0], configurations, rest)
    chosen = {k: v for k, v in configurations.items() if not options.only or k in options.only}
    if {"mr-pretrained", "mr-pretrained-sa"} & set(chosen) and not known.encoder and not options.table_only:
        sys.exit("error: mr-pretrained and mr-pretrained-sa need --encoder MODEL (or pass --only mr-network mr-sa)")
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
    for name in [n for n in found if n != "mr-network" and "mr-network" in found]:
        paired = sorted(set(found["mr-network"]) & set(found[name]))
        if paired:
            gains = [found[name][k] - found["mr-network"][k] for k in paired]
            a = statistics.mean(found["mr-network"][k] for k in paired)
            b = statistics.mean(found[name][k] for k in paired)
            verdict = "met" if statistics.mean(gains) >= GOAL_POINTS else "missed"
            print(f"\n{name}, folds {paired}: network {a:.2f}, pretrained {b:.2f}, gain {statistics.mean(gains):+.2f} "
                  f"(per fold {', '.join(f'{g:+.2f}' for g in gains)}; goal ≥ {GOAL_POINTS}: {verdict}"
                  f"{'' if len(paired) == 10 else ', on these folds only'})")  # fmt: skip


if __name__ == "__main__":
    main()
