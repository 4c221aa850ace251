"""Runs that cannot succeed: they end with a plain error, a FAILED run (or none at all), never a
NaN model or a traceback; the flags are checked before anything runs."""

import argparse
import importlib
import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from apps import cli, runner
from tests.support import new_store, run_main, runs_of
from tests.toy_app import APP as TOY

APPS = ("sentiment", "slot_filling", "keywords", "speech_ctc", "parsing", "text_autoencoder", "speech_autoencoder")


def _numeric_actions(parser):
    """Every (command, flag, argparse type) taking a number, over the sub-commands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                for inner in sub._actions:
                    if inner.type is not None and inner.choices is None and inner.option_strings:
                        yield command, inner.option_strings[0], inner.type


@pytest.mark.parametrize("name", APPS)
def test_every_numeric_flag_refuses_nan_infinity_and_overflow(name):
    parser = runner.build_parser(importlib.import_module(f"apps.{name}").APP)
    numeric = [(c, f, t) for c, f, t in _numeric_actions(parser) if t not in (str,)]
    assert len(numeric) > 10
    for command, flag, parse in numeric:
        assert parse not in (int, float), f"{command} {flag}: a bare {parse.__name__} takes any value"
        for text in ("nan", "inf", "-inf", "1e999", "-1"):
            try:
                value = parse(text)
            except (argparse.ArgumentTypeError, ValueError):
                continue
            assert math.isfinite(value) and value >= 0, (command, flag, text, value)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--learning-rate", "nan"], "--learning-rate: must be a finite number above 0, got nan"),
        (["--learning-rate", "0"], "--learning-rate: must be a finite number above 0"),
        (["--clipnorm", "inf"], "--clipnorm: must be a finite number, 0 or above, got inf"),
        (["--dropout", "1"], "--dropout: must be in [0, 1)"),
        (["--seed", "-3"], "--seed: must be an integer from 0"),
        (["--context-window", "4"], "--context-window: must be odd"),
        (["--word-dropout", "nan"], "--word-dropout: must be in [0, 1), got nan"),
    ],
)
def test_a_bad_number_is_an_argparse_error(flags, message, capsys):
    from apps.slot_filling import APP

    with pytest.raises(SystemExit) as exit:
        runner.main(APP, ["train", *flags])
    assert exit.value.code == 2 and message in capsys.readouterr().err


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(3)
    lines = []
    for _ in range(300):
        digits = rng.integers(0, 10, size=rng.integers(3, 13))
        lines.append(("high" if digits.mean() > 4.5 else "low") + "\t" + " ".join(map(str, digits)))
    (folder / "digits.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_a_diverging_training_stops_fails_its_run_and_logs_no_model(tmp_path, digits, capsys):
    """Adam's steps of 1e38 overflow float32 in the first batches: the loss becomes NaN."""
    tracking_uri = new_store(tmp_path, "toy")
    result = run_main(
        TOY, "train", "--data-dir", digits, "--tracking-uri", tracking_uri, "--experiment", "toy",
        "--checkpoint-dir", tmp_path / "checkpoints", "--verbose", "0", "--learning-rate", "1e38", "--clipnorm", "0",
        capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2
    assert "the training loss became nan at epoch 1, batch" in result.stderr
    assert "--learning-rate" in result.stderr and "--clipnorm 1" in result.stderr
    assert "--resume" not in result.stderr and "Traceback" not in result.stderr
    (run,) = runs_of(tracking_uri, "toy")
    assert run.info.status == "FAILED" and "diverged" in run.data.tags["error"]
    assert "test_accuracy" not in run.data.metrics
    assert not MlflowClient(tracking_uri).list_artifacts(run.info.run_id, "model")
    assert not list((tmp_path / "checkpoints").rglob("model.keras"))


def test_bad_data_fails_before_a_run_is_created(tmp_path, capsys):
    (tmp_path / "digits.tsv").write_text("high\t1 2 3\nmedium\t4 5\n")
    tracking_uri = new_store(tmp_path, "toy")
    result = run_main(
        TOY, "train", "--data-dir", tmp_path, "--tracking-uri", tracking_uri, "--experiment", "toy", capsys=capsys
    )
    assert result.returncode == 2 and "digits.tsv, line 2" in result.stderr
    assert "--resume" not in result.stderr and "Traceback" not in result.stderr
    assert runs_of(tracking_uri, "toy") == []


@pytest.mark.parametrize(
    "name, dataset, message",
    [
        ("sentiment", "nosuch", "--dataset 'nosuch': no such data set"),
        ("keywords", "nosuch", "--dataset 'nosuch': no such data set"),
        ("sentiment", "csv:/no/such.csv", "no such file"),
        ("keywords", "liaad:/no/such.zip", "no such file"),
    ],
)
@pytest.mark.parametrize("command", ["train", "tune"])
def test_an_unknown_data_set_is_an_error_before_any_run(name, dataset, message, command, tmp_path, capsys):
    app = importlib.import_module(f"apps.{name}").APP
    tracking_uri = new_store(tmp_path, "x")
    result = run_main(
        app, command, "--dataset", dataset, "--tracking-uri", tracking_uri, "--experiment", "x",
        "--checkpoint-dir" if command == "train" else "--tuner-dir", tmp_path / "out", capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2 and message in result.stderr
    assert "--resume" not in result.stderr
    assert runs_of(tracking_uri, "x") == []


def test_cli_types_say_what_they_accept():
    assert cli.fraction("0.5") == 0.5 and cli.positive_number("1e-3") == 1e-3
    with pytest.raises(argparse.ArgumentTypeError, match="in \\[0, 1\\)"):
        cli.fraction("nan")


def test_a_keyphrase_set_whose_keys_never_occur_is_an_error_not_a_tensorflow_traceback(tmp_path, capsys):
    import zipfile

    from apps.keywords import APP

    path = tmp_path / "mismatched.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for doc_id in range(8):
            archive.writestr(f"Set/docsutf8/{doc_id}.txt", f"recurrent networks read sequences, text {doc_id}.")
            archive.writestr(f"Set/keys/{doc_id}.key", "quantum chromodynamics\n")
    tracking_uri = new_store(tmp_path, "x")
    result = run_main(
        APP, "train", "--dataset", f"liaad:{path}", "--tracking-uri", tracking_uri, "--experiment", "x",
        "--checkpoint-dir", tmp_path / "checkpoints", capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2 and "in none of the 4 training documents" in result.stderr
    assert "Traceback" not in result.stderr and runs_of(tracking_uri, "x") == []


def test_a_keyphrase_set_too_small_to_split_says_so(tmp_path, capsys):
    import zipfile

    from apps.keywords import APP

    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for doc_id in range(2):
            archive.writestr(f"Set/docsutf8/{doc_id}.txt", "recurrent networks read sequences.")
            archive.writestr(f"Set/keys/{doc_id}.key", "recurrent networks\n")
    tracking_uri = new_store(tmp_path, "x")
    result = run_main(
        APP, "train", "--dataset", f"liaad:{path}", "--tracking-uri", tracking_uri, "--experiment", "x", capsys=capsys
    )
    assert result.returncode == 2 and "2 usable documents leave the valid split(s) empty" in result.stderr


def test_a_recordings_folder_without_training_takes_names_the_split_rule(tmp_path, capsys):
    from apps.speech_ctc import APP
    from tests.support import SHARED_DATA

    for take in range(5):
        source = SHARED_DATA / "fsdd" / "recordings" / f"3_theo_{take}.wav"
        (tmp_path / f"3_me_{take}.wav").symlink_to(source)
    tracking_uri = new_store(tmp_path, "x")
    result = run_main(
        APP, "train", "--dataset", f"folder:{tmp_path}", "--tracking-uri", tracking_uri, "--experiment", "x",
        capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no recordings for the train and valid split(s)" in result.stderr and "0-4 test" in result.stderr
    assert runs_of(tracking_uri, "x") == []


def test_two_fold_cross_validation_of_texts_says_why_it_cannot_be(tmp_path, capsys):
    """Each fold tests while the next validates: two folds would leave nothing to train on."""
    from apps.sentiment import APP
    from tests.support import write_reviews_csv

    reviews = write_reviews_csv(tmp_path / "reviews.csv", per_class=30)
    tracking_uri = new_store(tmp_path, "x")
    result = run_main(
        APP, "train", "--dataset", f"csv:{reviews}", "--cv", "2", "--tracking-uri", tracking_uri, "--experiment", "x",
        capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2 and "--cv 2: each fold tests once" in result.stderr
    assert "Traceback" not in result.stderr and runs_of(tracking_uri, "x") == []
