"""The per-speaker table of docs/results/autoencoders.md from `speech_autoencoder train --cv 5` runs.

    python -m apps.speech_autoencoder train --cv 5 --run-name fsdd-loso            # one fold a speaker
    python -m benchmarks.speech_search_table --tracking-uri URI fsdd-loso [fsdd-loso-denoising ...]

For each run name (a cross-validation parent in the `speech_autoencoder` experiment, or
`--experiment`): each held-out speaker's MAP of the codes, of the averaged MFCCs and of DTW (on
DTW's query subset, where the codes and the mean are also scored), the seconds per query, and the
mean over the folds finished so far.
"""

import argparse
import statistics

import mlflow

COLUMNS = ("code_map", "mean_map", "dtw_map", "code_map_dtw_subset", "mean_map_dtw_subset")


def folds(parent):
    children = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        output_format="list",
    )
    done = [r for r in children if r.info.status == "FINISHED"]
    return sorted(done, key=lambda r: int(r.data.tags.get("cv_fold", 0)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", help="run names of cross-validation parents")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--experiment", default="speech_autoencoder")
    parser.add_argument(
        "--speakers", default="george,jackson,lucas,nicolas,theo",
        help="the data set's speakers in sorted order, fold K holding out the K-th (default: FSDD's)",
    )  # fmt: skip
    options = parser.parse_args(argv)
    if options.tracking_uri:
        mlflow.set_tracking_uri(options.tracking_uri)
    print("| run | held-out speaker | code MAP | mean-MFCC MAP | DTW MAP (subset) | code MAP (subset) | "
          "mean MAP (subset) | code / DTW seconds per query |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in options.names:
        parents = mlflow.search_runs(
            experiment_names=[options.experiment], filter_string=f"tags.mlflow.runName = '{name}'", output_format="list"
        )
        if not parents:
            print(f"| {name} | no such run | | | | | | |")
            continue
        found = folds(parents[0])
        for run in found:
            m = run.data.metrics
            speaker = options.speakers.split(",")[int(run.data.tags.get("cv_fold", 0))]
            print(f"| {name} | {speaker} | " + " | ".join(f"{100 * m[f'test_{c}']:.1f}" for c in COLUMNS)
                  + f" | {1000 * m['test_code_seconds_per_query']:.2f} ms / "
                  f"{1000 * m['test_dtw_seconds_per_query']:.0f} ms |")  # fmt: skip
        if found:
            means = [statistics.mean(100 * r.data.metrics[f"test_{c}"] for r in found) for c in COLUMNS]
            speed = statistics.mean(
                r.data.metrics["test_dtw_seconds_per_query"] / r.data.metrics["test_code_seconds_per_query"]
                for r in found
            )
            print(f"| {name} | mean of {len(found)} | " + " | ".join(f"**{v:.1f}**" for v in means)
                  + f" | DTW / code: {speed:.0f}× |")  # fmt: skip


if __name__ == "__main__":
    main()
