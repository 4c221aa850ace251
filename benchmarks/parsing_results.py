"""The tables of docs/results/parsing.md: the parser at full length, and cell kinds and attention side by side.

    python -m benchmarks.parsing_results                      # train what is missing, print the tables
    python -m benchmarks.parsing_results --only compare       # the side-by-side runs only
    python -m benchmarks.parsing_results --table-only         # print the tables from the store

Each (configuration, seed) is one `python -m apps.parsing train` run in the experiment
`--experiment` (default `parsing_results`), named CONFIG-sSEED; runs FINISHED there are not
trained again. "main" is the app's default model trained for up to 24 epochs (about an hour
on 2 cores); the "compare" group trains every configuration for the same 4 epochs, so that cell
kinds, attention and character features are compared at one budget. The test figures are greedy decoding's;
`evaluate --beam-width` scores a logged model with beam search.
"""

import statistics

from benchmarks.common import finished_runs, sweep, sweep_options

COMPARE = ["--epochs", "4"]
GROUPS = {
    "main": {"main-bilstm-additive": ["--epochs", "24"]},
    "compare": {
        "lstm-additive": COMPARE,
        "lstm-none": [*COMPARE, "--attention", "none"],
        "gru-additive": [*COMPARE, "--cell", "gru"],
        "elman-additive": [*COMPARE, "--cell", "elman"],
        "lstm-additive-chars": [*COMPARE, "--char-features", "32"],
        # Without the next word's encoder state: the decoder finds its word by attention alone, or
        # (none) by counting its XX, as in Vinyals et al.'s comparison.
        "lstm-additive-no-next-word": [*COMPARE, "--no-next-word"],
        "lstm-none-no-next-word": [*COMPARE, "--attention", "none", "--no-next-word"],
    },
}
GOAL_F1 = 80.0


def table(experiment, configurations, seeds):
    runs = finished_runs(experiment)
    rows = [
        "| configuration | flags | seeds | test F1 (%) | F1 ≤ 40 words | complete match (%) | malformed | "
        "right-branching F1 | best val F1 (%) | best epoch | minutes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def mean(found, key, scale=100.0, digits=2):
        values = [scale * r.data.metrics[key] for r in found]
        spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
        return f"{statistics.mean(values):.{digits}f}{spread}"

    for name, arguments in configurations.items():
        found = [runs[f"{name}-s{s}"] for s in seeds if f"{name}-s{s}" in runs]
        flags = "`" + " ".join(arguments) + "`"
        if not found:
            rows.append(f"| {name} | {flags} | none yet | | | | | | | | |")
            continue
        rows.append(
            f"| {name} | {flags} | {', '.join(r.info.run_name.rsplit('-s', 1)[1] for r in found)} "
            f"| {mean(found, 'test_f1')} | {mean(found, 'test_f1_len40')} | {mean(found, 'test_complete_match')} "
            f"| {mean(found, 'test_malformed', 1.0, 0)} | {mean(found, 'test_right_branching_f1')} "
            f"| {mean(found, 'best_val_f1')} | {mean(found, 'best_epoch', 1.0, 0)} "
            f"| {mean(found, 'train_seconds', 1 / 60, 1)} |"
        )
    return "\n".join(rows)


def main(argv=None):
    options = sweep_options(__doc__, "parsing_results", [0], GROUPS, argv)
    groups = {k: v for k, v in GROUPS.items() if not options.only or k in options.only}
    for configurations in groups.values():
        sweep("parsing", configurations, options)
    for group, configurations in groups.items():
        goal = f" (goal: test F1 ≥ {GOAL_F1}, no malformed tree, training ≤ 60 minutes)" if group == "main" else ""
        print(f"\n{group}{goal}\n")
        print(table(options.experiment, configurations, options.seeds))


if __name__ == "__main__":
    main()
