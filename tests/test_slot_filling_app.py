"""The slot-filling app end to end: real (short) trainings on ATIS, tracked in a temporary MLflow store."""

import json
import shutil

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from apps import runner, saved
from apps.slot_filling import APP
from pipelines.slots import read_split
from tests.support import (
    SHARED_DATA,
    cli,
    new_store,
    run_main,
    runs_of,
    single_run,
)

SMALL_MODEL = ["--units", "64", "--embedding-dim", "64", "--learning-rate", "0.005", "--dropout", "0.2"]
SENTENCES = [
    "i want to leave boston and arrive in denver on november second",
    "Show me the cheapest fare from Dallas to Baltimore.",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("slot_filling")
    tracking_uri = new_store(root, "test-slot-filling")
    code = runner.main(
        APP,
        [
            "train",
            "--dataset", "atis",
            "--data-dir", str(SHARED_DATA),
            "--cell", "lstm",
            "--epochs", "2",
            *SMALL_MODEL,
            "--word-signatures", "--word-dropout", "0.1",
            "--tracking-uri", tracking_uri,
            "--experiment", "test-slot-filling",
            "--checkpoint-dir", str(root / "checkpoints"),
            "--register-model", "atis-tagger",
            "--verbose", "0",
        ],
    )  # fmt: skip
    assert code == 0
    run = single_run(tracking_uri, "test-slot-filling")
    return {"root": root, "tracking_uri": tracking_uri, "run": run}


def test_training_run_is_tracked_with_params_metrics_and_tags(trained):
    run = trained["run"]
    assert run.info.status == "FINISHED"
    params = run.data.params
    for name, value in {
        "dataset": "atis", "cell": "lstm", "bidirectional": "True", "layers": "1", "units": "64",
        "epochs": "2", "batch_size": "32", "seed": "0", "context_window": "3", "embedding_dim": "64",
        "dropout": "0.2", "word_signatures": "True", "word_dropout": "0.1",
        "experiment": "test-slot-filling", "learning_rate": "0.005", "xla": "", "dtype_policy": "float32",
    }.items():  # fmt: skip
        assert params[name] == value, name
    client = MlflowClient(trained["tracking_uri"])
    for key in ("loss", "val_loss", "val_slot_f1", "val_intent_accuracy"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 1], key
    metrics = run.data.metrics
    for key in ("test_slot_f1", "test_intent_accuracy", "test_sentence_accuracy"):
        assert 0.0 < metrics[key] <= 1.0, key
    # Two epochs of a small BiLSTM already tag most slots and intents.
    assert metrics["test_slot_f1"] > 0.7 and metrics["test_intent_accuracy"] > 0.8
    tags = run.data.tags
    assert tags["app"] == "slot_filling" and tags["dataset"] == "atis" and tags["cell"] == "lstm"
    assert tags["device"].startswith(("CPU", "GPU"))
    assert tags["version.tensorflow"] == "2.21.0" and "version.keras" in tags
    assert len(tags["git_commit"].split("-")[0]) == 40
    # No --xla given: Keras' LSTM keeps its own path, and the run says so.
    assert tags["jit_compile"] == "off" and "built-in" in tags["jit_compile_reason"]


def test_training_run_logs_plots_reports_vocabularies_and_model(trained):
    run_id = trained["run"].info.run_id
    client = MlflowClient(trained["tracking_uri"])

    def listing(path=None):
        return {a.path for a in client.list_artifacts(run_id, path)}

    assert {"learning_curve.png", "reports", "assets"} <= listing()
    assert {"reports/slot_report_test.txt", "reports/intent_report_test.txt"} <= listing("reports")
    report = mlflow.artifacts.load_text(f"runs:/{run_id}/reports/slot_report_test.txt")
    assert "fromloc.city_name" in report and "micro avg" in report
    words = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/assets/vocabularies/words.json"))
    assert "boston" in words["tokens"]
    model_info = mlflow.models.get_model_info(f"runs:/{run_id}/model")
    assert model_info.signature.inputs.input_names() == ["text"]


def test_logged_model_predicts_from_raw_text_after_reload(trained):
    run_id = trained["run"].info.run_id
    local = keras.saving.load_model(trained["root"] / "checkpoints" / run_id / "model.keras")
    expected = local({"text": np.array(SENTENCES, dtype=object)}).numpy()
    assert expected.shape == (2, 65)
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    records = pyfunc.predict(pd.DataFrame({"text": SENTENCES}))
    # The records are the saved network's rows, decoded: the intent, then a tag per word read.
    for record, row in zip(records, expected):
        assert record["intent"] == row[0].decode()
        assert record["slots"] == [t.decode() for t in row[1 : 1 + len(record["words"])]]
        assert all(t == b"" for t in row[1 + len(record["words"]) :])
    assert records[0]["words"] == SENTENCES[0].split()
    intents = {e.intent for e in read_split(SHARED_DATA / "atis" / "train")}
    assert records[0]["intent"] in intents
    assert mlflow.pyfunc.load_model("models:/atis-tagger/1").predict(pd.DataFrame({"text": SENTENCES})) == records


def test_mlflow_models_serve_answers_as_predict_prints(trained, tmp_path, capsys):
    from tests.servers import check_served_as_predicted

    check_served_as_predicted(
        APP, f"runs:/{trained['run'].info.run_id}/model", trained["tracking_uri"], SENTENCES,
        tmp_path / "serve.log", capsys,
    )  # fmt: skip


def test_evaluate_on_the_reloaded_model_gives_the_logged_test_metrics(trained, capsys):
    run = trained["run"]
    metrics = saved.evaluate(
        APP,
        runner.build_parser(APP).parse_args(
            ["evaluate", "--model", f"runs:/{run.info.run_id}/model", "--data-dir", str(SHARED_DATA),
             "--tracking-uri", trained["tracking_uri"]]
        ),
    )  # fmt: skip
    for name, value in metrics.items():
        assert value == pytest.approx(run.data.metrics[f"test_{name}"], abs=1e-9), name
    # The saved model reads unseen test words by their signatures, as training did.
    serving = saved.load_model(f"runs:/{run.info.run_id}/model", trained["tracking_uri"])
    assert APP.vocabularies_of(serving).words.signatures
    assert "test_slot_f1:" in capsys.readouterr().out


def test_predict_in_a_fresh_process_prints_word_slot_pairs_and_intent(trained):
    result = cli(
        "slot_filling", "predict", "--model", f"runs:/{trained['run'].info.run_id}/model",
        "--tracking-uri", trained["tracking_uri"], SENTENCES[0],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == SENTENCES[0]
    pairs = [line.split() for line in lines[1:13]]
    assert [p[0] for p in pairs] == SENTENCES[0].split()
    assert all(p[1] == "O" or p[1][:2] in ("B-", "I-") for p in pairs)
    assert lines[13].strip().startswith("intent: atis_")


def test_predict_with_a_missing_model_says_what_to_pass(capsys):
    result = run_main(APP, "predict", "--model", "no/such/model.keras", "hello", capsys=capsys)
    assert result.returncode == 2
    assert "--model no/such/model.keras: no such file or MLflow model" in result.stderr
    assert "runs:/RUN_ID/model" in result.stderr


def test_bad_data_is_an_error_naming_file_and_line_before_any_run(tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(SHARED_DATA / "atis", data / "atis")
    tags = data / "atis" / "valid" / "seq.out"
    lines = tags.read_text().splitlines()
    lines[2] += " O"
    tags.write_text("\n".join(lines) + "\n")
    tracking_uri = new_store(tmp_path, "bad-data")
    result = run_main(
        APP, "train", "--data-dir", str(data), "--epochs", "1", "--tracking-uri", tracking_uri,
        "--experiment", "bad-data", "--checkpoint-dir", str(tmp_path / "checkpoints"), capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"error: {tags}:3:" in result.stderr and "tags for" in result.stderr
    assert "--resume" not in result.stderr and runs_of(tracking_uri, "bad-data") == []


def test_mixed_precision_computes_in_float16_with_float32_outputs():
    args = runner.build_parser(APP).parse_args(
        ["train", "--data-dir", str(SHARED_DATA), "--mixed-precision", "--units", "16",
         "--embedding-dim", "16", "--cell", "peephole_lstm"]
    )  # fmt: skip
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        data = APP.load_data(args)
        model = APP.build_model(args, data)
        model.compile(optimizer="adam", **APP.compile_arguments(args, data, model))
        inputs, targets, weights = next(iter(APP.fit_dataset(data, "train")))
        logs = model.train_on_batch(inputs, targets, weights, return_dict=True)
        assert np.isfinite(logs["loss"])
        assert model.get_layer("recurrent").compute_dtype == "float16"
        outputs = model(inputs)
        assert outputs["slots"].dtype == "float32" and outputs["intent"].dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_logged_model_tags_are_valid_iob_chunks(trained):
    """Viterbi decoding (the default): no I-x outside an x chunk, on every test sentence."""
    run_id = trained["run"].info.run_id
    model = saved.load_model(f"runs:/{run_id}/model", trained["tracking_uri"])
    assert model.get_layer("slot_decoder").scores == "logits"
    sentences = [" ".join(e.words) for e in read_split(SHARED_DATA / "atis" / "test")]
    rows = model.predict_on_batch({"text": tf.constant(sentences)})
    invalid = []
    for sentence, row in zip(sentences, rows):
        tags = [t.decode() for t in row[1:] if t != b""]
        for previous, tag in zip(["O", *tags], tags):
            if tag.startswith("I-") and previous[2:] != tag[2:]:
                invalid.append((sentence, previous, tag))
    assert not invalid, invalid[:3]


def test_slot_crf_with_a_forward_jordan_tagger_says_why_not():
    args = runner.build_parser(APP).parse_args(
        ["train", "--data-dir", str(SHARED_DATA), "--slot-crf", "--cell", "jordan", "--no-bidirectional"]
    )  # fmt: skip
    with pytest.raises(runner.UserError, match="--slot-crf needs per-word tag scores"):
        APP.build_model(args, APP.load_data(args))


def test_predict_takes_any_text_or_says_why(trained):
    """Hypothesis: any Unicode, blank, very long or path-like texts give a slot per word read and an
    intent, or a plain error."""
    from tests.properties import check_predictions, text_inputs

    model = saved.load_model(f"runs:/{trained['run'].info.run_id}/model", trained["tracking_uri"])

    def valid(texts, results):
        assert len(results) == len(texts)
        for result in results:
            assert len(result["slots"]) == len(result["words"]) and result["intent"]
            assert all(tag == "O" or tag[:2] in ("B-", "I-") for tag in result["slots"])

    tally = check_predictions(APP, model, text_inputs(), valid, "predict_slot_filling")
    assert tally["predicted"] > 0
