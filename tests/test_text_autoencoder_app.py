"""The text auto-encoder end to end on 600 review sentences: training, its commands on the saved
model, and the sentiment network started from its encoder."""

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from apps import pretraining, runner, saved
from apps.sentiment import APP as SENTIMENT
from apps.text_autoencoder import APP
from apps.text_autoencoder_commands import settings_of
from apps.text_autoencoder_data import pad, reconstructor
from tests.support import SHARED_DATA, new_store, run_main, single_run, write_reviews_csv

SMALL = ["--units", "16", "--embedding-dim", "16", "--target-embedding-dim", "16", "--code-size", "16",
         "--decoder-units", "32", "--max-words", "800", "--min-word-count", "1", "--batch-size", "32",
         "--learning-rate", "0.01"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("text_autoencoder")
    reviews = write_reviews_csv(root / "reviews.csv", per_class=300)
    tracking_uri = new_store(root, "test-text-ae")
    code = runner.main(APP, [
        "train", "--dataset", f"csv:{reviews}", "--epochs", "2", *SMALL, "--tracking-uri", tracking_uri,
        "--experiment", "test-text-ae", "--checkpoint-dir", str(root / "checkpoints"), "--verbose", "0",
    ])  # fmt: skip
    assert code == 0
    run = single_run(tracking_uri, "test-text-ae")
    return {"root": root, "reviews": reviews, "tracking_uri": tracking_uri, "run": run,
            "uri": f"runs:/{run.info.run_id}/model"}  # fmt: skip


def logged_codes(trained):
    folder = mlflow.artifacts.download_artifacts(
        run_id=trained["run"].info.run_id, artifact_path="reports/codes_test.tsv", tracking_uri=trained["tracking_uri"]
    )
    rows = [line.split("\t") for line in open(folder, encoding="utf-8").read().splitlines()]
    return [r[0] for r in rows], np.array([[float(v) for v in r[1:]] for r in rows], "float32")


def test_training_logs_reconstruction_metrics_and_reports(trained):
    run, client = trained["run"], MlflowClient(trained["tracking_uri"])
    metrics = run.data.metrics
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_token_accuracy")] == [0, 1]
    for name in ("exact", "token_accuracy", "bleu"):
        assert 0 <= metrics[f"test_{name}"] <= 1
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert {"reports/by_length_test.png", "reports/by_length_test.txt", "reports/code_map_test.png",
            "reports/codes_test.tsv", "reports/reconstructions_test.txt"} <= reports  # fmt: skip


def test_a_reloaded_model_gives_the_logged_codes_and_metrics(trained, tmp_path, capsys):
    texts, logged = logged_codes(trained)
    assert len(texts) > 3
    (tmp_path / "sentences.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    result = run_main(APP, "encode", "--model", trained["uri"], tmp_path / "sentences.txt", "--output",
                      tmp_path / "codes.npy", "--tracking-uri", trained["tracking_uri"], capsys=capsys)  # fmt: skip
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "codes.npy"), logged, atol=1e-5)
    args = runner.build_parser(APP).parse_args([
        "evaluate", "--model", trained["uri"], "--dataset", f"csv:{trained['reviews']}",
        "--tracking-uri", trained["tracking_uri"],
    ])  # fmt: skip
    metrics = saved.evaluate(APP, args)
    for name in ("exact", "token_accuracy", "bleu"):
        assert metrics[name] == pytest.approx(trained["run"].data.metrics[f"test_{name}"], abs=1e-9)


def test_greedy_reconstruction_is_the_argmax_of_the_training_model_fed_its_own_output(trained):
    model = saved.load_model(trained["uri"], tracking_uri=trained["tracking_uri"])
    words, max_length, _ = settings_of(model)
    sources = [words.encode(s.split()) for s in ("a gripping , funny film .", "the plot is thin", "dull")]
    rebuilt = reconstructor(model).reconstruct(pad(sources), words.start_id, words.end_id, max_length + 1)
    for source, tokens in zip(sources, rebuilt):
        previous = np.array([[words.start_id, *tokens]], "int32")
        scores = np.asarray(model({"words": np.array([source], "int32"), "previous": previous}))[0]
        expected = [*tokens, words.end_id] if len(tokens) < max_length + 1 else tokens
        assert list(np.argmax(scores, axis=-1))[: len(expected)] == expected


def test_neighbours_find_a_sentence_itself_first(trained, tmp_path, capsys):
    texts, _ = logged_codes(trained)
    (tmp_path / "collection.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    args = runner.build_parser(APP).parse_args([
        "neighbours", "--model", trained["uri"], texts[2], "--in", str(tmp_path / "collection.txt"), "--count", "3",
        "--tracking-uri", trained["tracking_uri"],
    ])  # fmt: skip
    found = saved.run_command(APP, args)
    assert found[0][0][0] == texts[2] and found[0][0][1] == pytest.approx(1.0, abs=1e-5)


def test_probe_scores_codes_beside_averaged_embeddings(trained, capsys):
    args = runner.build_parser(APP).parse_args([
        "probe", "--model", trained["uri"], "--dataset", f"csv:{trained['reviews']}", "--folds", "3",
        "--tracking-uri", trained["tracking_uri"],
    ])  # fmt: skip
    results = saved.run_command(APP, args)
    spec = f"csv:{trained['reviews']}"
    assert set(results) == {f"{spec}_code", f"{spec}_mean_embedding"}
    assert all(len(scores) == 3 and ((0 <= scores) & (scores <= 1)).all() for scores in results.values())
    assert "mean_embedding" in capsys.readouterr().out


def test_mlflow_models_serve_rebuilds_sentences_as_predict_prints(trained, tmp_path, capsys):
    from tests.servers import check_served_as_predicted

    records = check_served_as_predicted(APP, trained["uri"], trained["tracking_uri"], ["a fine film", "dull ."],
                                        tmp_path / "serve.log", capsys)  # fmt: skip
    assert records[0]["read"] and records[0]["rebuilt"] is not None


def test_bad_input_gets_an_error_naming_it(trained, tmp_path, capsys):
    result = run_main(APP, "predict", "--model", trained["uri"], "fine", "   ", "--tracking-uri",
                      trained["tracking_uri"], capsys=capsys)  # fmt: skip
    assert result.returncode == 2 and "input 2 is empty" in result.stderr
    (tmp_path / "lines.txt").write_text("a film\n\n", encoding="utf-8")
    result = run_main(APP, "encode", "--model", trained["uri"], tmp_path / "lines.txt", "--output",
                      tmp_path / "x.npy", "--tracking-uri", trained["tracking_uri"], capsys=capsys)  # fmt: skip
    assert result.returncode == 2 and "lines.txt, line 2" in result.stderr


def copied_rows(model, words, location):
    """The words whose row of `model`'s embedding equals the auto-encoder's row of the same word."""
    source = pretraining.pretrained(location)
    source_words, _, _ = settings_of(source)
    a, b = model.get_layer("embedding").embeddings.numpy(), source.get_layer("embedding").embeddings.numpy()
    return [
        t for i, t in enumerate(words.tokens, start=words.num_special) if np.array_equal(a[i], b[source_words.id(t)])
    ]


def test_sentiment_starts_from_the_auto_encoders_embedding_and_encoder(trained):
    model_path = trained["root"] / "checkpoints" / trained["run"].info.run_id / "model.keras"
    args = runner.build_parser(SENTIMENT).parse_args([
        "train", "--dataset", f"csv:{trained['reviews']}", "--data-dir", str(SHARED_DATA), "--ngrams", "0",
        "--units", "16", "--embedding-dim", "16", "--pretrained-encoder", str(model_path),
    ])  # fmt: skip
    data = SENTIMENT.load_data(args)
    model = SENTIMENT.build_model(args, data)
    SENTIMENT.start_weights(model, args, data)
    source = pretraining.pretrained(str(model_path))
    source_words, _, _ = settings_of(source)
    shared = [t for t in data.words.tokens if t in source_words]
    assert len(shared) > 100 and sorted(copied_rows(model, data.words, str(model_path))) == sorted(shared)
    for a, b in zip(model.get_layer("recurrent").get_weights(), source.get_layer("recurrent").get_weights()):
        np.testing.assert_array_equal(a, b)
    args.units = 24
    with pytest.raises(runner.UserError, match="pass the same --cell, --units"):
        SENTIMENT.start_weights(SENTIMENT.build_model(args, data), args, data)
