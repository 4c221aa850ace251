"""The key term extraction app's runs on a 400-abstract Inspec inspec400: an ensemble interrupted and
resumed, character features, a tuning job (apart from test_keywords_app so that two workers share them)."""

import os
import signal
import subprocess
import sys

import keras
import mlflow
import numpy as np
import pytest
from scipy.special import softmax

from apps import runner, saved
from apps.keywords import APP
from tests.test_keywords_app import ABSTRACT
from tests.support import (
    REPOSITORY,
    SHARED_DATA,
    new_store,
    runs_of,
    tune_and_evaluate,
)


def test_members_train_an_ensemble_that_resumes_and_averages_the_members_taggers(inspec400, tmp_path, capsys):
    tracking_uri = new_store(tmp_path, "ensemble")
    common = ["--tracking-uri", tracking_uri, "--checkpoint-dir", str(tmp_path / "checkpoints")]
    env = {**os.environ, "RNN_SUITE_DATA": str(SHARED_DATA), "PYTHONPATH": str(REPOSITORY), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "apps.keywords", "train", "--dataset", f"liaad:{inspec400}", "--members", "2",
         "--seed", "1", "--epochs", "2", "--layers", "1", "--units", "16", "--embedding-dim", "16",
         "--max-length", "128", "--verbose", "2", "--experiment", "ensemble", *common],
        cwd=REPOSITORY, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output, second = [], False
    for line in process.stdout:
        output.append(line)
        second = second or line.startswith("member 2/2")
        if second and line.startswith("Epoch 1/2"):  # the first member is done: stop the second
            process.send_signal(signal.SIGTERM)
            break
    output.append(process.communicate(timeout=120)[0])
    assert process.returncode == 130, "".join(output)
    runs = {r.info.run_name.rsplit("-", 1)[-1]: r for r in runs_of(tracking_uri, "ensemble")}
    assert {k: r.info.status for k, r in runs.items()} == {
        "members2": "KILLED",
        "member0": "FINISHED",
        "member1": "KILLED",
    }
    parent = runs["members2"].info.run_id
    assert f"train --resume {parent}" in "".join(output)

    capsys.readouterr()
    assert runner.main(APP, ["train", "--resume", parent, "--verbose", "0", *common]) == 0
    assert f"member 1/2: finished earlier, run {runs['member0'].info.run_id}" in capsys.readouterr().out
    resumed = {r.info.run_name.rsplit("-", 1)[-1]: r for r in runs_of(tracking_uri, "ensemble")}
    assert {k: r.info.run_id for k, r in resumed.items()} == {k: r.info.run_id for k, r in runs.items()}
    assert all(r.info.status == "FINISHED" for r in resumed.values())
    children = [resumed["member0"], resumed["member1"]]
    assert [c.data.tags["ensemble_member"] for c in children] == ["0", "1"]
    assert [c.data.params["seed"] for c in children] == ["2", "3"]  # SEED*N+i: --seed 1, N = 2
    metrics = resumed["members2"].data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient(tracking_uri).list_artifacts(parent)}
    assert "learning_curve.png" in artifacts  # the members' curves side by side
    assert metrics["members_test_f1_at_10"] == pytest.approx(
        np.mean([c.data.metrics["test_f1_at_10"] for c in children])
    )

    # The logged ensemble holds the members' own trained taggers and averages their probabilities.
    ensemble = saved.load_model(f"runs:/{parent}/model", tracking_uri).get_layer("tagger_ensemble")
    members = [layer for layer in ensemble.layers if isinstance(layer, keras.Model)]
    taggers = [saved.load_model(f"runs:/{c.info.run_id}/model").get_layer("tagger") for c in children]
    assert len(members) == 2
    for member, tagger in zip(members, taggers):
        for mine, theirs in zip(member.get_weights(), tagger.get_weights(), strict=True):
            np.testing.assert_array_equal(mine, theirs)
    args = runner.build_parser(APP).parse_args(["train", "--dataset", f"liaad:{inspec400}", "--max-length", "128"])
    batch = next(iter(APP.fit_dataset(APP.load_data(args), "test")))[0]
    logits = [keras.ops.convert_to_numpy(tagger.predict_on_batch(batch)) for tagger in taggers]
    probabilities = np.mean([softmax(z, axis=-1) for z in logits], axis=0)
    np.testing.assert_allclose(ensemble.predict_on_batch(batch), np.log(probabilities), atol=1e-5)
    # ... and is what the parent's test figures come from, reproduced from raw text.
    evaluate = runner.build_parser(APP).parse_args([
        "evaluate", "--model", f"runs:/{parent}/model", "--dataset", f"liaad:{inspec400}", "--tracking-uri", tracking_uri,
    ])  # fmt: skip
    for name, value in saved.evaluate(APP, evaluate).items():
        assert value == pytest.approx(metrics[f"test_{name}"], abs=1e-9), name


def test_char_features_feed_the_tagger_and_the_saved_model_reads_them_from_raw_text(inspec400, tmp_path):
    import tensorflow as tf

    args = runner.build_parser(APP).parse_args([
        "train", "--dataset", f"liaad:{inspec400}", "--char-features", "6", "--units", "16",
        "--embedding-dim", "16", "--max-length", "128",
    ])  # fmt: skip
    data = APP.load_data(args)
    model = APP.build_model(args, data)
    model.compile(optimizer="adam", **APP.compile_arguments(args, data, model))
    inputs, _, weights = next(iter(APP.fit_dataset(data, "train")))
    # Each real word carries its letters, padding none.
    np.testing.assert_array_equal(inputs["chars"].numpy()[..., 0] != 0, weights.numpy() > 0)
    model.fit(APP.fit_dataset(data, "train").take(3), verbose=0, shuffle=False)
    metrics = APP.evaluate(model, data, "test")
    serving = APP.serving_model(model, data, args)
    serving.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(
        reloaded.predict_on_batch({"text": tf.constant([ABSTRACT])}),
        serving.predict_on_batch({"text": tf.constant([ABSTRACT])}),
    )
    eval_args = runner.build_parser(APP).parse_args(
        ["evaluate", "--dataset", f"liaad:{inspec400}", "--model", "unused"]
    )
    for name, value in APP.evaluate_saved(reloaded, eval_args).items():
        assert value == pytest.approx(metrics[name], abs=1e-9), name


def test_a_tuned_model_is_finished_as_train_finishes_one_with_its_fitted_ranking(inspec400, tmp_path):
    flags = [
        "--dataset",
        f"liaad:{inspec400}",
        "--layers",
        "1",
        "--units",
        "32",
        "--embedding-dim",
        "32",
        "--max-length",
        "200",
    ]
    parent, _ = tune_and_evaluate(APP, tmp_path, flags, ["--dataset", f"liaad:{inspec400}"])
    assert any(k.startswith("best_ranking_") for k in parent.data.metrics)  # the ranking fitted after training
