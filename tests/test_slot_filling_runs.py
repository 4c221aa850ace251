"""The slot-filling app's other runs on ATIS: resume after a kill, the CRF, self-attention, character
features, a tuning job (apart from test_slot_filling_app so that two workers share them)."""

import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from apps import runner, training_loop
from apps.app import model_state
from apps.slot_filling import APP
from tests.test_slot_filling_app import SENTENCES, SMALL_MODEL
from pipelines.text import character_ids
from tests.support import (
    REPOSITORY,
    SHARED_DATA,
    new_store,
    single_run,
    tune_and_evaluate,
    write_atis_subset,
)


def test_interrupted_training_resumes_where_it_stopped(tmp_path):
    tracking_uri = new_store(tmp_path, "resume")
    common = ["--tracking-uri", tracking_uri, "--checkpoint-dir", str(tmp_path / "checkpoints")]
    data = write_atis_subset(tmp_path / "data", (1000, 100, 100))  # the run saves its data folder
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "apps.slot_filling", "train", "--cell", "elman", "--no-bidirectional",
         "--epochs", "3", *SMALL_MODEL, "--verbose", "2", "--experiment", "resume", "--data-dir", str(data),
         *common],
        cwd=REPOSITORY, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = []
    for line in process.stdout:
        output.append(line)
        if line.startswith("Epoch 2/3"):  # epoch 1 is over and backed up: `kill` it
            # SIGTERM, as `kill` or a job scheduler sends; Ctrl-C takes the same path (test_callbacks).
            process.send_signal(signal.SIGTERM)
            break
    output.append(process.communicate(timeout=120)[0])
    output = "".join(output)
    assert process.returncode == 130, output
    run = single_run(tracking_uri, "resume")
    assert run.info.status == "KILLED"
    assert f"train --resume {run.info.run_id}" in output

    assert runner.main(APP, ["train", "--resume", run.info.run_id, "--verbose", "0", *common]) == 0
    run = single_run(tracking_uri, "resume")
    assert run.info.status == "FINISHED"
    history = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == [0, 1, 2]  # each epoch once: none redone or lost
    assert "test_slot_f1" in run.data.metrics
    expected = "on" if training_loop.tf_gpus() else "off"  # a custom cell: XLA by default on a GPU only
    assert run.data.tags["jit_compile"] == expected and "custom cell" in run.data.tags["jit_compile_reason"]
    # A finished run cannot be resumed again.
    assert runner.main(APP, ["train", "--resume", run.info.run_id, *common]) == 2


def test_slot_crf_trains_its_transitions_and_the_saved_model_decodes_with_them(tmp_path):
    args = runner.build_parser(APP).parse_args(
        ["train", "--data-dir", str(SHARED_DATA), "--slot-crf", *SMALL_MODEL, "--learning-rate", "0.02"]
    )  # fmt: skip
    data = APP.load_data(args)
    model = APP.build_model(args, data)
    model.compile(optimizer="adam", **APP.compile_arguments(args, data, model))
    crf = model.get_layer("slot_crf")
    batches = APP.fit_dataset(data, "train")
    model.fit(batches.take(30), verbose=0, shuffle=False)
    transitions = keras.ops.convert_to_numpy(crf.transition_scores)
    assert np.abs(transitions).max() > 0.01  # trained: they start at zero

    metrics = APP.evaluate(model, data, "valid")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model_state(model).decoder.transition_scores), transitions)
    reloaded = assert_saved_serving_model_predicts_the_same(model, data, args, tmp_path, metrics)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded.get_layer("slot_decoder").transition_scores), transitions
    )


def test_self_attention_and_sentence_to_slots_read_only_the_real_words(tmp_path):
    args = runner.build_parser(APP).parse_args(
        ["train", "--data-dir", str(SHARED_DATA), "--self-attention", "2", "--sentence-to-slots", *SMALL_MODEL]
    )  # fmt: skip
    data = APP.load_data(args)
    model = APP.build_model(args, data)
    inspect = keras.Model(
        model.input, [model.get_layer("attended_features").output, model.get_layer("with_sentence").output]
    )
    ids = np.array([[5, 9, 14, 3, 0, 0, 0], [7, 2, 11, 8, 6, 4, 12]], dtype="int32")
    features, with_sentence = (keras.ops.convert_to_numpy(t) for t in inspect(ids, training=False))
    width = features.shape[-1]
    assert width == 2 * 2 * 64  # the BiLSTM's features, then what they attend to
    for row, length in enumerate([4, 7]):
        sentence = features[row, :length].mean(axis=0)  # the padding does not count
        for t in range(length):
            np.testing.assert_allclose(with_sentence[row, t, width:], sentence, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(with_sentence[row, t, :width], features[row, t])

    # Padding never reaches a real word: the same sentence, padded longer, is scored the same.
    longer = np.concatenate([ids, np.zeros((2, 5), dtype="int32")], axis=1)
    short = {k: keras.ops.convert_to_numpy(v) for k, v in model(ids, training=False).items()}
    padded = {k: keras.ops.convert_to_numpy(v) for k, v in model(longer, training=False).items()}
    np.testing.assert_allclose(padded["intent"], short["intent"], rtol=1e-5, atol=1e-5)
    for row, length in enumerate([4, 7]):
        np.testing.assert_allclose(padded["slots"][row, :length], short["slots"][row, :length], rtol=1e-5, atol=1e-5)

    assert_saved_serving_model_predicts_the_same(model, data, args, tmp_path)


def test_char_features_read_unseen_words_by_their_letters_in_training_and_in_the_saved_model(tmp_path):
    args = runner.build_parser(APP).parse_args(
        ["train", "--data-dir", str(SHARED_DATA), "--char-features", "8", "--word-signatures", *SMALL_MODEL]
    )  # fmt: skip
    data = APP.load_data(args)
    model = APP.build_model(args, data)
    model.compile(optimizer="adam", **APP.compile_arguments(args, data, model))
    batch = next(iter(APP.fit_dataset(data, "train")))
    inputs = batch[0]
    assert set(inputs) == {"words", "chars"}
    # Every real word has its letters; padding words have none.
    real_words = inputs["words"].numpy() != 0
    np.testing.assert_array_equal(inputs["chars"].numpy()[..., 0] != 0, real_words)
    model.fit(APP.fit_dataset(data, "train").take(5), verbose=0, shuffle=False)

    # Two unseen codes of one shape share a word id (their signature) but not their letters.
    ids = data.vocabularies.words.lookup_layer()(tf.constant([["dtx", "dqz"]])).numpy()
    assert ids[0, 0] == ids[0, 1]
    spelling = keras.Model(model.input["chars"], model.get_layer("characters").output)
    codes = spelling.predict_on_batch(character_ids(tf.constant([["dtx", "dqz"]]), data.max_chars).numpy())
    assert np.abs(codes[0, 0] - codes[0, 1]).max() > 1e-4

    metrics = APP.evaluate(model, data, "valid")
    assert_saved_serving_model_predicts_the_same(model, data, args, tmp_path, metrics)


def test_a_tuned_model_is_finished_as_train_finishes_one(tmp_path):
    data = write_atis_subset(tmp_path / "data")
    flags = ["--data-dir", str(data), "--units", "32", "--embedding-dim", "32", "--learning-rate", "0.01"]
    parent, _ = tune_and_evaluate(APP, tmp_path, flags, ["--data-dir", str(data)])
    assert parent.data.metrics["best_test_slot_f1"] > 0  # a model that tags, so the match means something


def assert_saved_serving_model_predicts_the_same(model, data, args, tmp_path, metrics=None):
    """Saves the serving model, reloads it: the same predictions from raw text, and (given the
    tagger's `metrics` on valid) `evaluate_saved` reproduces them. Returns the reloaded model."""
    serving = APP.serving_model(model, data, args)
    serving.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(
        reloaded.predict_on_batch({"text": tf.constant(SENTENCES)}),
        serving.predict_on_batch({"text": tf.constant(SENTENCES)}),
    )
    if metrics is not None:
        eval_args = runner.build_parser(APP).parse_args(
            ["evaluate", "--data-dir", str(SHARED_DATA), "--model", "unused", "--split", "valid"]
        )
        assert APP.evaluate_saved(reloaded, eval_args) == pytest.approx(metrics)
    return reloaded
