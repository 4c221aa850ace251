"""The CTC speech app end to end: a short real training on FSDD connected digits."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from apps import runner, saved
from apps.speech_ctc import APP
from tests.support import SHARED_DATA, cli, new_store, run_main, single_run, tune_and_evaluate

SMALL = ["--train-utterances", "160", "--valid-utterances", "30", "--test-utterances", "30",
         "--units", "32", "--layers", "1", "--conv-filters", "32", "--learning-rate", "0.005", "--stride", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    tracking_uri = new_store(root, "test-speech")
    code = runner.main(APP, [
        "train", "--data-dir", str(SHARED_DATA), "--epochs", "3", *SMALL, "--tracking-uri", tracking_uri,
        "--freq-masks", "1", "--time-masks", "1",  # training batches masked, evaluation not
        "--experiment", "test-speech", "--checkpoint-dir", str(root / "checkpoints"), "--verbose", "0",
    ])  # fmt: skip
    assert code == 0
    return {"root": root, "tracking_uri": tracking_uri, "run": single_run(tracking_uri, "test-speech")}


def test_training_learns_and_logs_error_rates_and_a_posteriorgram(trained):
    run = trained["run"]
    client = MlflowClient(trained["tracking_uri"])
    losses = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)]
    assert len(losses) == 3 and losses[-1] < losses[0] / 2
    assert run.data.params["freq_masks"] == "1" and run.data.params["time_masks"] == "1"
    # The app's defaults: each training recording at a speed in 0.8-1.2, the rate halved on plateaus.
    assert run.data.params["speed_perturb"] == "0.2" and run.data.params["reduce_lr"] == "1"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_digit_error_rate")] == [0, 1, 2]
    assert 0.0 <= run.data.metrics["test_digit_error_rate"] and 0.0 <= run.data.metrics["test_sequence_accuracy"] <= 1
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert {"reports/posteriorgram_test.png", "reports/decoded_test.txt"} <= reports


def test_logged_model_gives_frame_log_probabilities_and_digits_from_wav_bytes(trained):
    run_id = trained["run"].info.run_id
    local = saved.load_model(str(trained["root"] / "checkpoints" / run_id / "model.keras"))
    features = np.random.default_rng(0).normal(size=(2, 50, 120)).astype("float32")
    log_probabilities = local.predict({"features": features, "frames": np.array([50, 30], dtype="int32")}, verbose=0)
    assert log_probabilities.shape == (2, 25, 11)
    np.testing.assert_allclose(np.exp(log_probabilities).sum(-1), 1.0, rtol=1e-4)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    assert model.metadata.metadata["classes"][0] == "blank"
    wav = SHARED_DATA / "fsdd" / "recordings" / "7_lucas_2.wav"
    (record,) = model.predict(pd.DataFrame({"audio": [wav.read_bytes()]}))
    assert record["file"] == "input 1"
    assert record["digits"] == APP.predict(local, [str(wav)], runner.build_parser(APP).parse_args(
        ["predict", "--model", "unused"]))[0]["digits"]  # fmt: skip


def test_mlflow_models_serve_answers_as_predict_prints(trained, tmp_path, capsys):
    from tests.servers import check_served_as_predicted

    recordings = [SHARED_DATA / "fsdd" / "recordings" / name for name in ("7_lucas_2.wav", "3_theo_10.wav")]
    check_served_as_predicted(
        APP, f"runs:/{trained['run'].info.run_id}/model", trained["tracking_uri"], [str(r) for r in recordings],
        tmp_path / "serve.log", capsys, params={"beam_width": 4}, flags=["--beam-width", "4"],
    )  # fmt: skip


def test_evaluate_reproduces_the_logged_test_metrics(trained):
    run = trained["run"]
    args = runner.build_parser(APP).parse_args([
        "evaluate", "--model", f"runs:/{run.info.run_id}/model", "--data-dir", str(SHARED_DATA),
        "--utterances", "30", "--tracking-uri", trained["tracking_uri"],
    ])  # fmt: skip
    for name, value in saved.evaluate(APP, args).items():
        assert value == pytest.approx(run.data.metrics[f"test_{name}"], abs=1e-9), name


def test_predict_on_a_real_recording_prints_its_digits(trained):
    wav = SHARED_DATA / "fsdd" / "recordings" / "7_lucas_2.wav"
    result = cli("speech_ctc", "predict", "--model", f"runs:/{trained['run'].info.run_id}/model",
                 "--tracking-uri", trained["tracking_uri"], "--beam-width", "4", str(wav))  # fmt: skip
    assert result.returncode == 0, result.stderr
    path, digits = result.stdout.strip().rsplit(": ", 1)
    assert path == str(wav)
    assert digits == "(no digits)" or all(d.isdigit() for d in digits.split())


def test_a_file_that_is_not_audio_is_a_clear_error(trained, tmp_path, capsys):
    text = tmp_path / "notes.wav"
    text.write_text("not audio\n" * 50)
    result = run_main(APP, "predict", "--model", f"runs:/{trained['run'].info.run_id}/model",
                      "--tracking-uri", trained["tracking_uri"], text, capsys=capsys)  # fmt: skip
    assert result.returncode == 2
    assert f"error: {text}: not readable as audio" in result.stderr


def test_a_tuned_model_is_finished_as_train_finishes_one(tmp_path):
    flags = ["--train-utterances", "80", "--valid-utterances", "20", "--test-utterances", "20", "--units", "32",
             "--layers", "1", "--conv-filters", "16", "--stride", "2"]  # fmt: skip
    tune_and_evaluate(APP, tmp_path, flags, ["--utterances", "20"])


def test_a_users_own_folder_of_recordings_trains_and_evaluates(tmp_path, capsys):
    """--dataset folder:PATH: two speakers' takes 0-14, named as FSDD names them, in a folder tree."""
    from pipelines.audio import fsdd_recordings

    mine = tmp_path / "my-digits"
    for recording in fsdd_recordings(SHARED_DATA, progress=False):
        if recording.speaker in ("jackson", "theo") and recording.take < 15:
            folder = mine / recording.speaker
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{recording.digit}_{recording.speaker}_{recording.take}.wav").symlink_to(recording.path)
    tracking_uri = new_store(tmp_path, "mine")
    tiny = ["--train-utterances", "24", "--valid-utterances", "6", "--test-utterances", "6", "--units", "16",
            "--layers", "1", "--conv-filters", "16", "--stride", "2", "--epochs", "1"]  # fmt: skip
    trained = run_main(
        APP, "train", "--dataset", f"folder:{mine}", *tiny, "--tracking-uri", tracking_uri, "--experiment", "mine",
        "--checkpoint-dir", tmp_path / "checkpoints", "--verbose", "0", capsys=capsys,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "(100 training recordings)" in trained.stdout  # 2 speakers x 10 digits x takes 10-14
    run = single_run(tracking_uri, "mine")
    assert run.data.params["dataset"] == f"folder:{mine}"
    args = runner.build_parser(APP).parse_args([
        "evaluate", "--model", f"runs:/{run.info.run_id}/model", "--dataset", f"folder:{mine}",
        "--utterances", "6", "--tracking-uri", tracking_uri,
    ])  # fmt: skip
    metrics = saved.evaluate(APP, args)
    assert metrics["digit_error_rate"] == pytest.approx(run.data.metrics["test_digit_error_rate"], abs=1e-9)


def test_predict_takes_any_file_or_says_why(trained, tmp_path):
    """Hypothesis: random bytes, truncated or odd WAV files, folders and missing paths give digits
    or a plain error naming the file."""
    import itertools

    from hypothesis import strategies as st

    from tests.properties import check_predictions, wav_bytes

    counter = itertools.count()
    real = (SHARED_DATA / "fsdd" / "recordings" / "3_theo_7.wav").read_bytes()

    def saved_file(data):
        path = tmp_path / f"input{next(counter)}.wav"
        path.write_bytes(data)
        return str(path)

    contents = st.one_of(
        st.binary(max_size=400),
        st.builds(wav_bytes, st.integers(0, 16000), st.sampled_from([8000, 22050, 44100]), st.integers(1, 2)),
        st.integers(0, len(real)).map(lambda n: real[:n]),
    )
    paths = contents.map(saved_file) | st.sampled_from([str(tmp_path), str(tmp_path / "missing.wav")])

    def valid(files, results):
        assert [r["file"] for r in results] == files
        assert all(all(0 <= d <= 9 for d in r["digits"]) for r in results)

    tally = check_predictions(APP, model_of(trained), st.lists(paths, min_size=1, max_size=3), valid, "predict_speech")
    assert tally["predicted"] > 0


def model_of(trained):
    return saved.load_model(f"runs:/{trained['run'].info.run_id}/model", trained["tracking_uri"])
