"""The benchmark scripts, at tiny sizes: they run and their figures are consistent."""

import json
import statistics
import sys

import pytest

from benchmarks import cells, pipelines
from benchmarks.common import timings


def test_timings_are_median_and_interquartile_range_in_milliseconds():
    figures = timings([0.001, 0.002, 0.003, 0.004, 0.100])
    assert figures["ms"] == pytest.approx(3.0)
    assert figures["iqr_ms"] == pytest.approx(2.0)  # 4 ms - 2 ms


def test_cell_flops_count_the_gate_blocks():
    # Elman: one block of (inputs + units) x units multiply-adds per example and step.
    assert cells.cell_flops("elman", batch=1, steps=1, inputs=3, units=2) == 3 * 2 * (3 + 2) * 2
    assert cells.cell_flops("lstm", batch=2, steps=5, inputs=3, units=2) == 4 * cells.cell_flops(
        "elman", batch=2, steps=5, inputs=3, units=2
    )
    # Jordan (output units = units): input, fed-back output, and hidden-to-output products.
    assert cells.cell_flops("jordan", batch=1, steps=1, inputs=3, units=2) == 3 * 2 * (3 * 2 + 2 * 2 + 2 * 2)


def test_cells_benchmark_reports_each_kind_and_mode_as_json(capsys):
    assert cells.main(["--kinds", "elman", "lstm", "--batch", "4", "--steps", "3", "--inputs", "5", "--units", "6",
                       "--warmup", "1", "--repeats", "3", "--repeat", "2", "--json"]) == 0  # fmt: skip
    results = json.loads(capsys.readouterr().out)
    assert [(r["cell"], r["xla"]) for r in results] == [
        ("elman", False), ("elman", True), ("lstm", False), ("lstm", True)
    ]  # fmt: skip
    lstm = results[2]["round_ms"]
    for r in results:
        assert len(r["round_ms"]) == 2 and r["ms_per_step"] == pytest.approx(statistics.median(r["round_ms"]))
        assert r["tokens_per_s"] == pytest.approx(4 * 3 / (r["ms_per_step"] / 1000), rel=1e-6)
        flops = cells.cell_flops(r["cell"], batch=4, steps=3, inputs=5, units=6)
        assert r["flop_fraction"] == pytest.approx(flops / (r["ms_per_step"] / 1000) / 1e9 / r["matmul_gflops"])
        # Against Keras' LSTM without XLA: the ratio of the medians, between the rounds' own ratios
        # (with two rounds the ratio of the medians is their mediant).
        ratio, low, high = r["x_keras_lstm"]
        assert ratio == pytest.approx(statistics.median(lstm) / statistics.median(r["round_ms"]))
        assert sorted([low, high]) == pytest.approx(sorted(a / b for a, b in zip(lstm, r["round_ms"])))
        assert low - 1e-9 <= ratio <= high + 1e-9
    assert results[2]["x_keras_lstm"] == pytest.approx([1.0, 1.0, 1.0])


def test_cells_benchmark_trains_unrolled_layers_and_says_so(capsys):
    assert cells.main(["--kinds", "peephole_lstm", "gru", "--batch", "4", "--steps", "3", "--inputs", "5",
                       "--units", "6", "--warmup", "1", "--repeats", "2", "--repeat", "1", "--xla", "off",
                       "--unroll", "--json"]) == 0  # fmt: skip
    results = json.loads(capsys.readouterr().out)
    assert [(r["cell"], r["unroll"], r["threads"]) for r in results] == [
        ("peephole_lstm", True, None),
        ("gru", True, None),
    ]
    assert all(r["ms_per_step"] > 0 for r in results)


def test_cells_benchmark_names_the_optional_pytorch_requirement(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    with pytest.raises(SystemExit, match="requirements-peers.txt"):
        cells.main(["--kinds", "gru", "--batch", "2", "--steps", "2", "--inputs", "3", "--units", "4",
                    "--warmup", "1", "--repeats", "1", "--repeat", "1", "--xla", "off", "--peers", "--json"])  # fmt: skip


def test_cells_benchmark_sets_each_cell_beside_its_pytorch_peer(capsys):
    pytest.importorskip("torch", reason="PyTorch (package torch), benchmarks/requirements-peers.txt, not installed")
    assert cells.main(["--kinds", "gru", "jordan", "--batch", "4", "--steps", "3", "--inputs", "5", "--units", "6",
                       "--warmup", "1", "--repeats", "3", "--repeat", "2", "--xla", "off", "--peers", "--json"]) == 0  # fmt: skip
    results = {r["cell"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(results) == {"gru", "jordan", "torch.nn.GRU", "torch.nn.RNN"}
    for cell, peer in (("gru", "torch.nn.GRU"), ("jordan", "torch.nn.RNN")):
        expected = statistics.median(results[peer]["round_ms"]) / statistics.median(results[cell]["round_ms"])
        assert results[cell]["x_pytorch"][0] == pytest.approx(expected)
    # A peer is counted with the FLOPs of the Keras cell it stands beside.
    gru_flops = cells.cell_flops("gru", batch=4, steps=3, inputs=5, units=6)
    assert results["torch.nn.GRU"]["gflops"] == pytest.approx(
        gru_flops / (results["torch.nn.GRU"]["ms_per_step"] / 1000) / 1e9
    )


@pytest.mark.data
def test_pipeline_benchmark_measures_text_and_audio_against_the_model(capsys):
    assert pipelines.main([
        "--apps", "slot_filling", "--json",
        "--slot-filling-args", "--units", "8", "--embedding-dim", "8", "--no-bidirectional",
        "--cell", "elman", "--batch-size", "256",
    ]) == 0  # fmt: skip
    # Each app's flags take the rest of the command line, so one call per app.
    texts = json.loads(capsys.readouterr().out)
    assert pipelines.main(["--apps", "speech_ctc", "--json", "--speech-args", "--train-utterances", "40",
                           "--valid-utterances", "8", "--test-utterances", "8", "--units", "8",
                           "--layers", "1", "--batch-size", "20"]) == 0  # fmt: skip
    audio = json.loads(capsys.readouterr().out)
    text = texts[0]
    assert text["app"] == "slot_filling" and text["examples"] == 4478  # every ATIS training sentence
    assert text["cell"] == "elman" and text["xla"] is False  # CPU default for a custom cell
    assert audio[0]["examples"] == 40 and audio[0]["batch_size"] == 20
    for r in (text, audio[0]):
        assert r["pipeline_over_model"] == pytest.approx(r["pipeline_examples_per_s"] / r["model_examples_per_s"])
        assert r["batch_shapes"] >= 1
