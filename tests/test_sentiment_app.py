"""The sentiment app end to end: short real trainings, tracked in a temporary MLflow store."""

import csv

import mlflow
import numpy as np
import pandas as pd
import pytest

from apps import runner, saved
from apps.sentiment import APP
from fitting.ngrams import fit_blend
from pipelines.classification import load_text_dataset
from tests.support import (
    SHARED_DATA,
    cli,
    new_store,
    run_main,
    runs_of,
    single_run,
    tune_and_evaluate,
    write_reviews_csv,
)

SMALL = ["--units", "32", "--embedding-dim", "32", "--batch-size", "64", "--learning-rate", "0.003"]
REVIEWS = ["a gorgeous, witty, seductive movie", "a dull, lifeless and predictable mess."]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentiment")
    tracking_uri = new_store(root, "test-sentiment")
    code = runner.main(APP, [
        "train", "--dataset", "mr", "--data-dir", str(SHARED_DATA), "--epochs", "2", "--max-length", "40",
        *SMALL, "--tracking-uri", tracking_uri, "--experiment", "test-sentiment",
        "--checkpoint-dir", str(root / "checkpoints"), "--verbose", "0",
    ])  # fmt: skip
    assert code == 0
    return {"root": root, "tracking_uri": tracking_uri, "run": single_run(tracking_uri, "test-sentiment")}


def test_training_logs_accuracy_macro_f1_and_a_confusion_matrix(trained):
    run = trained["run"]
    assert run.info.status == "FINISHED"
    assert run.data.params["pooling"] == "attention" and run.data.tags["app"] == "sentiment"
    metrics = run.data.metrics
    assert 0.65 < metrics["test_accuracy"] <= 1.0 and 0.6 < metrics["test_macro_f1"] <= 1.0
    # Each part alone, scored on the same test split (bigram NBSVM gets about 0.79 on MR).
    assert run.data.params["ngrams"] == "2" and run.data.params["ngram_classifier"] == "nbsvm"
    assert run.data.params["fusion"] == "late"
    assert 0.72 < metrics["test_nb_accuracy"] < 0.85 and 0.55 < metrics["test_network_accuracy"] <= 1.0
    # Late fusion: both weights fitted on the validation split, the n-grams' clearly positive.
    assert metrics["fusion_ngram_weight"] > 0.1 and "fusion_network_weight" in metrics
    # NBSVM's default: word bigrams and character 2..5-grams, stacked on cross-fitted scores.
    assert metrics["ngram_word_weight"] > 0.1 and metrics["ngram_char_weight"] > 0.1
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "reports")}
    assert {"reports/confusion_matrix_test.png", "reports/classification_report_test.txt"} <= artifacts


def test_logged_model_takes_strings_and_gives_label_probabilities(trained):
    run_id = trained["run"].info.run_id
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    records = model.predict(pd.DataFrame({"text": REVIEWS}))
    assert model.metadata.metadata["labels"] == ["neg", "pos"]
    local = saved.load_model(str(trained["root"] / "checkpoints" / run_id / "model.keras"))
    probabilities = local({"text": np.array(REVIEWS, dtype=object)}).numpy()
    for record, row in zip(records, probabilities):
        assert [record["probabilities"][label] for label in ("neg", "pos")] == pytest.approx(row.tolist(), rel=1e-6)
        assert record["label"] == ("neg", "pos")[int(np.argmax(row))]
        assert record["probability"] == pytest.approx(float(row.max()), rel=1e-6)


def test_mlflow_models_serve_answers_as_predict_prints_with_its_flags_as_params(trained, tmp_path, capsys):
    from tests.servers import check_served_as_predicted

    records = check_served_as_predicted(
        APP, f"runs:/{trained['run'].info.run_id}/model", trained["tracking_uri"], REVIEWS,
        tmp_path / "serve.log", capsys, params={"explain": True}, flags=["--explain"],
    )  # fmt: skip
    assert all("attention" in record for record in records)


def test_evaluate_reproduces_the_logged_test_metrics(trained):
    run = trained["run"]
    args = runner.build_parser(APP).parse_args([
        "evaluate", "--model", f"runs:/{run.info.run_id}/model", "--dataset", "mr",
        "--data-dir", str(SHARED_DATA), "--tracking-uri", trained["tracking_uri"],
    ])  # fmt: skip
    metrics = saved.evaluate(APP, args)
    for name, value in metrics.items():
        assert value == pytest.approx(run.data.metrics[f"test_{name}"], abs=1e-9), name


def test_predict_prints_label_probability_and_explains_with_attention(trained):
    result = cli(
        "sentiment", "predict", "--model", f"runs:/{trained['run'].info.run_id}/model", "--explain",
        "--tracking-uri", trained["tracking_uri"], REVIEWS[0],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, *weights = result.stdout.splitlines()
    label, probability, text = first.split(maxsplit=2)
    assert label in ("neg", "pos") and 0.5 <= float(probability) <= 1.0 and text == REVIEWS[0]
    shown = [line.split() for line in weights]
    assert {row[-1] for row in shown} <= {"a", "gorgeous", ",", "witty", "seductive", "movie"}
    assert sum(float(row[0]) for row in shown) == pytest.approx(1.0, abs=0.01)  # all 7 tokens shown


def test_cross_validation_is_a_parent_run_with_a_child_per_fold(tmp_path):
    examples = load_text_dataset("mr", SHARED_DATA).examples
    path = tmp_path / "mr-small.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for example in examples[:150] + examples[-150:]:
            writer.writerow([example.text, example.label])
    tracking_uri = new_store(tmp_path, "cv")
    code = runner.main(APP, [
        "train", "--dataset", f"csv:{path}", "--cv", "3", "--epochs", "1", *SMALL, "--naive-bayes", "0",
        "--tracking-uri", tracking_uri, "--experiment", "cv", "--checkpoint-dir", str(tmp_path / "ck"),
        "--verbose", "0",
    ])  # fmt: skip
    assert code == 0
    runs = runs_of(tracking_uri, "cv")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.data.tags["cv_fold"] for c in children) == ["0", "1", "2"]
    accuracies = [c.data.metrics["test_accuracy"] for c in children]
    assert parent.data.metrics["cv_accuracy"] == pytest.approx(np.mean(accuracies))
    assert parent.data.metrics["cv_accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1))
    assert all(r.info.status == "FINISHED" for r in runs)
    # --naive-bayes 0: the network alone, no naive Bayes scores beside it
    assert "cv_nb_accuracy" not in parent.data.metrics and "test_nb_accuracy" not in children[0].data.metrics


def test_bad_csv_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("review,stars\nok,5\n")
    result = run_main(APP, "train", "--dataset", f"csv:{path}", "--tracking-uri", new_store(tmp_path, "bad"),
                      "--experiment", "bad", "--checkpoint-dir", tmp_path, capsys=capsys)  # fmt: skip
    assert result.returncode == 2
    assert "bad.csv: the CSV needs columns 'text' and 'label'" in result.stderr


def test_a_class_too_small_for_nbsvm_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "tiny.csv"
    rows = [("a fine film", "pos"), ("a dull film", "neg")] * 30 + [("well, it was a film", "meh")]
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows])
    result = run_main(APP, "train", "--dataset", f"csv:{path}", "--tracking-uri", new_store(tmp_path, "tiny"),
                      "--experiment", "tiny", "--checkpoint-dir", tmp_path, capsys=capsys)  # fmt: skip
    assert result.returncode == 2
    assert "--ngram-classifier nbsvm: class(es) meh have fewer than two training texts" in result.stderr
    assert "--ngram-classifier mnb" in result.stderr


def test_character_ngrams_with_naive_bayes_are_a_clear_error(tmp_path, capsys):
    path = tmp_path / "small.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *[("a fine film", "pos"), ("a dull film", "neg")] * 30])
    store = new_store(tmp_path, "small")
    result = run_main(APP, "train", "--dataset", f"csv:{path}", "--ngram-classifier", "mnb", "--char-ngrams", "4",
                      "--tracking-uri", store, "--experiment", "small", "--checkpoint-dir", tmp_path, capsys=capsys)  # fmt: skip
    assert result.returncode == 2
    assert "--char-ngrams 4 needs --ngram-classifier nbsvm (or pass --char-ngrams 0)" in result.stderr
    result = run_main(APP, "train", "--dataset", f"csv:{path}", "--char-ngrams", "9",
                      "--tracking-uri", store, "--experiment", "small", "--checkpoint-dir", tmp_path, capsys=capsys)  # fmt: skip
    assert result.returncode == 2 and "--char-ngrams 9: pass 2..7" in result.stderr


def test_fit_blend_is_a_logistic_regression_on_the_score_margins():
    # Two classes: softmax(a·n + b·g) is a logistic regression without intercept on the margins
    # (n1 - n0, g1 - g0); scikit-learn's unpenalized fit is the reference.
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, size=400)
    sign = np.where(gold == 1, 1.0, -1.0)
    network = np.stack([np.zeros(400), 0.8 * sign + rng.normal(0, 1.5, 400)], axis=1)
    ngram = np.stack(
        [-0.5 * (1.5 * sign + rng.normal(0, 2.0, 400)), 0.5 * (1.5 * sign + rng.normal(0, 2.0, 400))], axis=1
    )
    a, b = fit_blend(network, ngram, gold)
    margins = np.stack([network[:, 1] - network[:, 0], ngram[:, 1] - ngram[:, 0]], axis=1)
    reference = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-10, max_iter=10_000).fit(margins, gold)
    np.testing.assert_allclose([a, b], reference.coef_[0], rtol=1e-3)
    # and the three-class case lowers the loss below either classifier alone at its best scale
    gold3 = rng.integers(0, 3, size=300)
    network3 = rng.normal(0, 1, (300, 3)) + 1.2 * np.eye(3)[gold3]
    ngram3 = rng.normal(0, 1, (300, 3)) + 1.0 * np.eye(3)[gold3]

    def loss(x):
        x = x - x.max(axis=1, keepdims=True)
        return -np.mean(x[np.arange(300), gold3] - np.log(np.exp(x).sum(axis=1)))

    a3, b3 = fit_blend(network3, ngram3, gold3)
    scales = np.linspace(0.05, 5, 100)
    assert loss(a3 * network3 + b3 * ngram3) < min(
        min(loss(s * network3) for s in scales), min(loss(s * ngram3) for s in scales)
    )


def test_a_tuned_model_is_finished_as_train_finishes_one_its_ngram_weight_fitted(tmp_path):
    reviews = write_reviews_csv(tmp_path / "reviews.csv")
    flags = ["--dataset", f"csv:{reviews}", "--units", "16", "--embedding-dim", "16", "--max-length", "30"]
    parent, tracking_uri = tune_and_evaluate(APP, tmp_path, flags, ["--dataset", f"csv:{reviews}"])
    model = saved.load_model(f"runs:/{parent.info.run_id}/model", tracking_uri)
    weight = model.get_layer("classifier").get_layer("naive_bayes_weight").weight
    # Late fusion: the weight the network trained beside (0) was fitted on the validation split.
    assert abs(float(np.asarray(weight))) > 1e-3 and "best_fusion_ngram_weight" in parent.data.metrics


def test_predict_takes_any_text_or_says_why(trained):
    """Hypothesis: any Unicode, blank, very long or path-like texts give probabilities or a plain error."""
    from tests.properties import check_predictions, text_inputs

    model = saved.load_model(f"runs:/{trained['run'].info.run_id}/model", trained["tracking_uri"])

    def valid(texts, results):
        assert [r["text"] for r in results] == texts
        for result in results:
            assert abs(sum(result["probabilities"].values()) - 1.0) < 1e-4 and 0.0 <= result["probability"] <= 1.0

    tally = check_predictions(APP, model, text_inputs(), valid, "predict_sentiment")
    assert tally["predicted"] > 0
