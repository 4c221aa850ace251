"""The speech auto-encoder end to end on 600 FSDD recordings of three speakers: training with the
query-by-example baselines, the logged codes against a reloaded model's, search, bad files."""

import mlflow
import numpy as np
import pytest
import soundfile
from mlflow.tracking import MlflowClient

from apps import runner, saved
from apps.speech_autoencoder import APP
from tests.support import SHARED_DATA, new_store, run_main, single_run

SPEAKERS, TAKES = ("george", "jackson", "theo"), range(20)
SMALL = ["--units", "16", "--code-size", "16", "--decoder-units", "32", "--batch-size", "32", "--dtw-queries", "6"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_autoencoder")
    folder = root / "recordings"
    folder.mkdir()
    for speaker in SPEAKERS:
        for digit in range(10):
            for take in TAKES:
                name = f"{digit}_{speaker}_{take}.wav"
                (folder / name).symlink_to(SHARED_DATA / "fsdd" / "recordings" / name)
    tracking_uri = new_store(root, "test-speech-ae")
    code = runner.main(APP, [
        "train", "--dataset", f"folder:{folder}", "--test-speakers", "theo", "--epochs", "2", *SMALL,
        "--tracking-uri", tracking_uri, "--experiment", "test-speech-ae", "--checkpoint-dir", str(root / "checkpoints"),
        "--verbose", "0",
    ])  # fmt: skip
    assert code == 0
    run = single_run(tracking_uri, "test-speech-ae")
    return {"root": root, "folder": folder, "tracking_uri": tracking_uri, "run": run,
            "uri": f"runs:/{run.info.run_id}/model"}  # fmt: skip


def test_training_scores_the_codes_beside_averaged_mfccs_and_dtw(trained):
    run, client = trained["run"], MlflowClient(trained["tracking_uri"])
    metrics = run.data.metrics
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_code_map")] == [0, 1]
    for method in ("code", "mean", "dtw"):
        assert 0.1 <= metrics[f"test_{method}_map"] <= 1  # ten digits: chance is about 0.1
        assert metrics[f"test_{method}_seconds_per_query"] > 0
    assert metrics["test_dtw_queries"] == 6
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert {"reports/code_map_test.png", "reports/codes_test.tsv", "reports/reconstruction_test.png"} <= reports


def test_a_reloaded_model_gives_the_logged_codes_and_metrics(trained, tmp_path, capsys):
    path = mlflow.artifacts.download_artifacts(run_id=trained["run"].info.run_id, artifact_path="reports/codes_test.tsv",
                                               tracking_uri=trained["tracking_uri"])  # fmt: skip
    rows = [line.split("\t") for line in open(path).read().splitlines()]
    assert len(rows) == 200
    files = [str(trained["folder"] / r[0]) for r in rows[:40]]
    result = run_main(APP, "encode", "--model", trained["uri"], *files, "--output", tmp_path / "codes.csv",
                      "--tracking-uri", trained["tracking_uri"], capsys=capsys)  # fmt: skip
    assert result.returncode == 0, result.stderr
    logged = np.array([[float(v) for v in r[1:]] for r in rows[:40]])
    np.testing.assert_allclose(np.loadtxt(tmp_path / "codes.csv", delimiter=","), logged, atol=1e-5)
    args = runner.build_parser(APP).parse_args([
        "evaluate", "--model", trained["uri"], "--dataset", f"folder:{trained['folder']}", "--test-speakers", "theo",
        "--dtw-queries", "6", "--tracking-uri", trained["tracking_uri"],
    ])  # fmt: skip
    metrics = saved.evaluate(APP, args)
    for name in ("code_map", "code_p_at_10", "mean_map", "dtw_map", "mse"):
        assert metrics[name] == pytest.approx(trained["run"].data.metrics[f"test_{name}"], abs=1e-6), name


def test_search_finds_the_query_itself_first(trained, capsys):
    query = trained["folder"] / "3_theo_7.wav"
    args = runner.build_parser(APP).parse_args([
        "search", "--model", trained["uri"], str(query), "--in", str(trained["folder"]), "--count", "5",
        "--tracking-uri", trained["tracking_uri"],
    ])  # fmt: skip
    ranked = saved.run_command(APP, args)
    assert ranked[0][0].endswith("3_theo_7.wav") and ranked[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(ranked) == 5


def test_mlflow_models_serve_answers_as_predict_prints_and_refuses_bytes_that_are_not_audio(trained, tmp_path, capsys):
    import base64

    from tests.servers import check_served_as_predicted, invoke

    def not_audio(url):
        bad = base64.b64encode(b"not audio at all\n").decode()
        status, answer = invoke(url, {"dataframe_split": {"columns": ["audio"], "data": [[bad]]}})
        assert status == 400 and "not readable as audio" in answer["message"], answer

    recordings = [str(SHARED_DATA / "fsdd" / "recordings" / "4_theo_1.wav")]
    records = check_served_as_predicted(APP, trained["uri"], trained["tracking_uri"], recordings,
                                        tmp_path / "serve.log", capsys, then=not_audio)  # fmt: skip
    assert records[0]["frames"] > 0 and records[0]["mse"] >= 0


def test_bad_files_get_an_error_naming_them(trained, tmp_path, capsys):
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(50, "float32"), 8000)
    result = run_main(APP, "search", "--model", trained["uri"], short, "--in", trained["folder"],
                      "--tracking-uri", trained["tracking_uri"], capsys=capsys)  # fmt: skip
    assert result.returncode == 2 and "short.wav" in result.stderr and "shorter than one" in result.stderr
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n")
    result = run_main(APP, "encode", "--model", trained["uri"], text, "--output", tmp_path / "x.npy",
                      "--tracking-uri", trained["tracking_uri"], capsys=capsys)  # fmt: skip
    assert result.returncode == 2 and "notes.wav" in result.stderr and "not readable as audio" in result.stderr
