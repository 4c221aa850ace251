"""`sentiment train --autoencoder-epochs N`: the network's own embedding and encoder trained as a
sequence auto-encoder on its training texts before the classifier (Dai & Le's SA-LSTM)."""

import numpy as np
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from apps import pretraining, runner
from apps.sentiment import APP as SENTIMENT
from tests.support import SHARED_DATA, new_store, single_run, write_reviews_csv

SMALL = ["--ngrams", "0", "--units", "8", "--embedding-dim", "8", "--batch-size", "32", "--learning-rate", "0.01"]


def test_the_decoder_reads_start_and_the_words_and_writes_the_words_and_end():
    words = tf.data.Dataset.from_tensors({"words": tf.constant([[5, 3, 12], [12, 0, 0]])})
    # Ids ≥ 10 are spelt as OOV (1) by the decoder; START is 10, END 11.
    (inputs, target, weights), *_ = list(pretraining.autoencoder_batches(words, 10, 1, 10, 11))
    np.testing.assert_array_equal(inputs["words"], [[5, 3, 12], [12, 0, 0]])
    np.testing.assert_array_equal(inputs["previous"], [[10, 5, 3, 1], [10, 1, 0, 0]])
    np.testing.assert_array_equal(target, [[5, 3, 1, 11], [1, 11, 0, 0]])
    np.testing.assert_array_equal(weights, [[1, 1, 1, 1], [1, 1, 0, 0]])


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    return write_reviews_csv(tmp_path_factory.mktemp("sa") / "reviews.csv", per_class=100)


def built(reviews, *extra):
    args = runner.build_parser(SENTIMENT).parse_args(
        ["train", "--dataset", f"csv:{reviews}", "--data-dir", str(SHARED_DATA), *SMALL, *extra]
    )
    data = SENTIMENT.load_data(args)
    model = SENTIMENT.build_model(args, data)
    SENTIMENT.start_weights(model, args, data)
    return args, data, model


def test_pretraining_trains_the_embedding_and_encoder_only_and_lowers_the_reconstruction_loss(reviews):
    args, data, model = built(reviews)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}
    history = pretraining.train_as_autoencoder(
        model, data.batches("train", shuffle=True), len(data.words), data.words.oov_id, args, 5, verbose=0
    )
    for name in ("embedding", "recurrent"):
        for a, b in zip(before[name], model.get_layer(name).get_weights()):
            assert not np.allclose(a, b)
    for name in ("attention", "label"):
        for a, b in zip(before[name], model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] - 0.5, losses


def test_a_run_logs_the_auto_encoders_curve_and_refuses_a_last_state_encoder(reviews, tmp_path):
    tracking_uri = new_store(tmp_path, "sa")
    code = runner.main(SENTIMENT, [
        "train", "--dataset", f"csv:{reviews}", *SMALL, "--epochs", "1", "--autoencoder-epochs", "2",
        "--tracking-uri", tracking_uri, "--experiment", "sa", "--checkpoint-dir", str(tmp_path / "ck"),
        "--verbose", "0",
    ])  # fmt: skip
    assert code == 0
    run = single_run(tracking_uri, "sa")
    curve = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "autoencoder_loss")
    assert [m.step for m in curve] == [0, 1] and run.data.params["autoencoder_epochs"] == "2"
    with pytest.raises(runner.UserError, match="--pooling mean or attention"):
        built(reviews, "--autoencoder-epochs", "1", "--pooling", "last")
