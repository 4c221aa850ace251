"""The ATIS table of docs/results/slot_filling.md: every cell kind, trained with several seeds, tracked in MLflow.

    python -m benchmarks.slot_filling_results                # train what is missing, print the table
    python -m benchmarks.slot_filling_results --table-only   # print the table from the store

Each (configuration, seed) is one `python -m apps.slot_filling train` run in
the experiment `--experiment` (default `slot_filling_results`), named
`CONFIG-sSEED`. Runs already FINISHED there are not trained again, so an
interrupted sweep continues where it stopped. The table gives the mean and
standard deviation of the test metrics over the seeds, next to the published
numbers on the same split.
"""

import statistics

from benchmarks.common import finished_runs, sweep, sweep_options

# On top of the app's defaults (200 units, 300-dim embeddings, dropout 0.5, digits
# folded). Forward (unidirectional) cells get Mesnil et al.'s context window, as in the
# papers they are compared with; the bidirectional LSTM sees both sides itself.
# Settings chosen on the validation split (docs/results/slot_filling.md).
FORWARD = ["--no-bidirectional", "--context-window", "7"]
CONFIGURATIONS = {
    "elman": ["--cell", "elman", *FORWARD],
    "jordan": [
        "--cell",
        "jordan",
        "--no-bidirectional",
        "--context-window",
        "9",
        "--dropout",
        "0.3",
        "--patience",
        "8",
        "--word-signatures",
        "--word-dropout",
        "0.1",
    ],  # fmt: skip
    "peephole_lstm": ["--cell", "peephole_lstm", *FORWARD],
    "simple_rnn": ["--cell", "simple_rnn", *FORWARD],
    "lstm": ["--cell", "lstm", *FORWARD],
    "gru": ["--cell", "gru", *FORWARD],
    "bilstm": [
        "--cell",
        "lstm",
        "--bidirectional",
        "--word-signatures",
        "--word-dropout",
        "0.1",
        "--epochs",
        "50",
    ],  # fmt: skip
    # The bidirectional LSTM reading each word alone: the layer sees both sides itself.
    "bilstm_window1": [
        "--cell",
        "lstm",
        "--bidirectional",
        "--word-signatures",
        "--word-dropout",
        "0.1",
        "--epochs",
        "50",
        "--context-window",
        "1",
    ],  # fmt: skip
    "bilstm_crf": [
        "--cell",
        "lstm",
        "--bidirectional",
        "--word-signatures",
        "--word-dropout",
        "0.1",
        "--epochs",
        "50",
        "--slot-crf",
    ],  # fmt: skip
    # bilstm_window1 with the weights averaged over training (Polyak, about 500 steps).
    "bilstm_ema": [
        "--cell",
        "lstm",
        "--bidirectional",
        "--word-signatures",
        "--word-dropout",
        "0.1",
        "--epochs",
        "50",
        "--context-window",
        "1",
        "--ema",
        "0.998",
    ],  # fmt: skip
}
PUBLISHED = {
    "elman": "94.98 (Mesnil et al. 2015, Elman RNN)",
    "jordan": "94.29 (Mesnil et al. 2015, Jordan RNN)",
    "lstm": "94.85 (Yao et al. 2014, LSTM)",
    "bilstm": "95.66 (Kurata et al. 2016, encoder-labeler deep LSTM)",
    "bilstm_window1": "95.66 (Kurata et al. 2016, encoder-labeler deep LSTM)",
    "bilstm_crf": "95.66 (Kurata et al. 2016, encoder-labeler deep LSTM)",
    "bilstm_ema": "95.66 (Kurata et al. 2016, encoder-labeler deep LSTM)",
}
GOALS = {"elman": 94.5, "jordan": 94.0, "bilstm": 95.7, "bilstm_window1": 95.7, "bilstm_crf": 95.7, "bilstm_ema": 95.7}


def table(experiment, configurations, seeds):
    runs = finished_runs(experiment)
    rows = [
        "| model | flags | runs | test slot F1 (%) | test intent acc. (%) | test sentence acc. (%) | best epoch | minutes | published slot F1 | goal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def spread(values):
        mean = 100 * statistics.mean(values)
        std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{mean:.2f} ± {std:.2f}"

    for name in configurations:
        found = [runs[f"{name}-s{s}"] for s in seeds if f"{name}-s{s}" in runs]
        flags = "`" + " ".join(configurations[name]) + "`"
        if not found:
            rows.append(f"| {name} | {flags} | 0 | | | | | | {PUBLISHED.get(name, '')} | |")
            continue
        metric = lambda key: [r.data.metrics[key] for r in found]  # noqa: E731
        slot_f1 = metric("test_slot_f1")
        goal = GOALS.get(name)
        verdict = ""
        if goal is not None:
            verdict = f"≥ {goal}: {'met' if 100 * statistics.mean(slot_f1) >= goal else 'missed'}"
        rows.append(
            f"| {name} | {flags} | {len(found)} | {spread(slot_f1)} "
            f"| {spread(metric('test_intent_accuracy'))} | {spread(metric('test_sentence_accuracy'))} "
            f"| {statistics.mean(metric('best_epoch')):.0f} "
            f"| {statistics.mean(metric('train_seconds')) / 60:.1f} | {PUBLISHED.get(name, '')} | {verdict} |"
        )
    return "\n".join(rows)


def main(argv=None):
    options = sweep_options(__doc__, "slot_filling_results", [0, 1, 2], CONFIGURATIONS, argv)
    configurations = {k: v for k, v in CONFIGURATIONS.items() if not options.only or k in options.only}
    sweep("slot_filling", configurations, options, base=["--dataset", "atis"])
    print(table(options.experiment, configurations, options.seeds))


if __name__ == "__main__":
    main()
