"""The key term extraction app end to end: a short real training on Inspec, tracked in MLflow."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from apps import runner, saved
from apps.keywords import APP
from pipelines.keyphrases import score_rankings
from pipelines.classification import tokenize_texts
from pipelines.keyphrases import TfIdfBaseline, keyphrase_metrics, load_keyphrase_dataset, split_documents
from pipelines.text import SentenceTokenizer
from tests.support import (
    SHARED_DATA,
    cli,
    new_store,
    single_run,
)

ABSTRACT = (
    "Cooperative three- and four-player quantum games. A cooperative multi-player quantum game "
    "played by 3 and 4 players has been studied. A quantum superposed operator is introduced."
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, inspec400):
    root = tmp_path_factory.mktemp("keywords")
    tracking_uri = new_store(root, "test-keywords")
    code = runner.main(APP, [
        "train", "--dataset", f"liaad:{inspec400}", "--epochs", "4", "--layers", "1", "--units", "48", "--embedding-dim", "48",
        "--learning-rate", "0.005", "--max-length", "256", "--word-dropout", "0.1", "--tracking-uri", tracking_uri,
        "--experiment", "test-keywords", "--checkpoint-dir", str(root / "checkpoints"), "--verbose", "0",
    ])  # fmt: skip
    assert code == 0
    return {"root": root, "tracking_uri": tracking_uri, "run": single_run(tracking_uri, "test-keywords"),
            "dataset": f"liaad:{inspec400}"}  # fmt: skip


def test_training_logs_keyphrase_metrics_beside_the_tfidf_baseline(trained):
    metrics = trained["run"].data.metrics
    for name in ("f1_at_5", "f1_at_10", "precision_at_10", "recall_at_10"):
        assert 0.0 <= metrics[f"test_{name}"] <= 1.0
    assert metrics["test_f1_at_10"] > 0.05  # four epochs of a small tagger find some keyphrases
    # --ranking fitted (the default): the ranking's coefficients fitted on the validation split
    assert {"ranking_log_best", "ranking_log_total", "ranking_words", "ranking_intercept"} <= set(metrics)
    # The baseline as computed independently here, on the same 100 test documents.
    documents = load_keyphrase_dataset(trained["dataset"]).documents
    assert len(documents) == 400  # the inspec400 fixture
    tokenizer = SentenceTokenizer(256, punctuation="split")
    baseline = TfIdfBaseline(tokenize_texts([d.text for d in documents], tokenizer))
    test = split_documents(documents)["test"]
    rankings = [[p for p, _ in baseline.rank(t)] for t in tokenize_texts([d.text for d in test], tokenizer)]
    gold = [tokenize_texts(list(d.keyphrases), tokenizer) for d in test]
    assert metrics["test_tfidf_f1_at_10"] == pytest.approx(keyphrase_metrics(rankings, gold)["f1_at_10"])


def test_reloaded_model_scores_words_and_reproduces_the_test_metrics(trained):
    run = trained["run"]
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    (record,) = model.predict(pd.DataFrame({"text": [ABSTRACT]}))
    scores = [k["score"] for k in record["keyphrases"]]
    assert record["text"] == ABSTRACT and 0 < len(scores) <= 10 and scores == sorted(scores, reverse=True)
    # The saved network's word probabilities (an independent path: the .keras file called directly).
    local = saved.load_model(str(trained["root"] / "checkpoints" / run.info.run_id / "model.keras"))
    probabilities = local({"text": np.array([ABSTRACT], dtype=object)}).numpy()
    assert probabilities.shape == (1, 256, 3)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
    args = runner.build_parser(APP).parse_args([
        "evaluate", "--model", f"runs:/{run.info.run_id}/model", "--dataset", trained["dataset"],
        "--tracking-uri", trained["tracking_uri"],
    ])  # fmt: skip
    # The saved model hashes the raw text's words itself (the statistics of unseen words), as the
    # training pipeline did: the same test figures from raw text.
    for name, value in saved.evaluate(APP, args).items():
        assert value == pytest.approx(run.data.metrics[f"test_{name}"], abs=1e-9), name
    serving = saved.load_model(f"runs:/{run.info.run_id}/model", trained["tracking_uri"])
    assert {"token_keys", "tagger"} <= {layer.name for layer in serving.layers}
    assert "word_dropout" in {layer.name for layer in serving.get_layer("tagger").layers}
    assert run.data.params["word_dropout"] == "0.1"


def test_predict_reads_a_file_or_a_string_and_prints_ranked_terms(trained, tmp_path):
    paper = tmp_path / "paper.txt"
    paper.write_text(ABSTRACT)
    model = f"runs:/{trained['run'].info.run_id}/model"
    result = cli("keywords", "predict", "--model", model, "--top-k", "5", "--tracking-uri", trained["tracking_uri"],
                 str(paper), ABSTRACT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.strip().split("\n" + " ".join(ABSTRACT.split())[:77])
    assert len(blocks) == 2  # the text's beginning, long ones shortened with "...", then its terms
    for block in blocks:
        scores = [float(line.split()[0]) for line in block.splitlines()[1:]]
        assert 0 < len(scores) <= 5 and scores == sorted(scores, reverse=True)
    as_json = cli("keywords", "predict", "--model", model, "--json", "--tracking-uri", trained["tracking_uri"],
                  str(paper), ABSTRACT)  # fmt: skip
    from_file, from_text = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert from_file == from_text and from_file["text"] == ABSTRACT


def test_mlflow_models_serve_answers_as_predict_prints(trained, tmp_path, capsys):
    from tests.servers import check_served_as_predicted

    check_served_as_predicted(
        APP, f"runs:/{trained['run'].info.run_id}/model", trained["tracking_uri"], [ABSTRACT, "recurrent networks"],
        tmp_path / "serve.log", capsys, params={"top_k": 3}, flags=["--top-k", "3"],
    )  # fmt: skip


def test_scores_against_all_and_uncontrolled_keyphrases_by_hand():
    rankings = [[("quantum games", 0.9), ("players", 0.5)], [("operator", 0.7)]]
    gold = [[["quantum", "game"], ["game", "theory"]], [["operator"], ["superposed", "operator"]]]
    uncontrolled = [[["quantum", "games"]], [["superposed", "operator"]]]
    metrics = score_rankings(rankings, gold, uncontrolled)
    # all keys: doc 1 P 1/2, R 1/2, F 1/2; doc 2 P 1/1, R 1/2, F 2/3
    assert metrics["f1_at_10"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert metrics["precision_at_10"] == pytest.approx((1 / 2 + 1) / 2)
    # uncontrolled: doc 1 P 1/2, R 1/1, F 2/3; doc 2 nothing found
    assert metrics["uncontrolled_f1_at_10"] == pytest.approx((2 / 3 + 0) / 2)
    assert metrics["uncontrolled_recall_at_10"] == pytest.approx(1 / 2)
    assert "uncontrolled_f1_at_5" in metrics and "uncontrolled_f1_at_5" not in score_rankings(rankings, gold)


def test_inspec_baseline_is_also_scored_against_hulths_uncontrolled_test_keyphrases():
    args = runner.build_parser(APP).parse_args(["train", "--dataset", "inspec", "--data-dir", str(SHARED_DATA)])
    data = APP.load_data(args)
    assert len(data.uncontrolled["train"]) == 1000 and len(data.uncontrolled["test"]) == 500
    assert data.labels is data.gold  # --keys all (the default): the tagger learns every keyphrase
    documents = split_documents(load_keyphrase_dataset("inspec", SHARED_DATA).documents)["test"]
    tokenizer = SentenceTokenizer(512, punctuation="split")
    uncontrolled = [tokenize_texts(list(d.uncontrolled), tokenizer) for d in documents]
    rankings = [[p for p, _ in data.tfidf.rank(t)] for t in tokenize_texts([d.text for d in documents], tokenizer)]
    metrics = APP.baseline_metrics(data, "test")
    assert metrics["tfidf_uncontrolled_f1_at_10"] == pytest.approx(
        keyphrase_metrics(rankings, uncontrolled)["f1_at_10"]
    )
    assert metrics["tfidf_uncontrolled_f1_at_10"] != pytest.approx(metrics["tfidf_f1_at_10"])


def test_keys_uncontrolled_needs_a_data_set_that_tells_them_apart(inspec400):
    args = runner.build_parser(APP).parse_args(["train", "--dataset", f"liaad:{inspec400}", "--keys", "uncontrolled"])
    with pytest.raises(runner.UserError, match="--keys uncontrolled: liaad:.* does not tell uncontrolled"):
        APP.load_data(args)


def test_predict_takes_any_text_or_says_why(trained, tmp_path):
    """Hypothesis: any Unicode, blank, very long or path-like texts (a folder, a missing file, a
    file that is not UTF-8) give ranked keyphrases or a plain error."""
    from hypothesis import strategies as st

    from tests.properties import check_predictions, text_inputs

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("r\xe9seaux r\xe9currents".encode("latin-1"))
    model = saved.load_model(f"runs:/{trained['run'].info.run_id}/model", trained["tracking_uri"])

    def valid(texts, results):
        assert [r["text"] for r in results] == texts
        for result in results:
            scores = [k["score"] for k in result["keyphrases"]]
            assert len(scores) <= 10 and scores == sorted(scores, reverse=True)

    inputs = text_inputs() | st.lists(st.sampled_from([str(latin1), str(tmp_path)]), min_size=1, max_size=2)
    tally = check_predictions(APP, model, inputs, valid, "predict_keywords")
    assert tally["predicted"] > 0
