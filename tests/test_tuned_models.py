"""The model a tuning job logs is the model `train` would log: finished on the same path.

For every app, a one-trial job on small real data; `evaluate` of the logged best model must
reproduce the job's `best_test_*` metrics, and the sentiment model must carry its fitted
n-gram weight (late fusion), not the 0 it trains with.
"""

import mlflow
import numpy as np
import pytest

from apps import runner, saved
from tests.support import SHARED_DATA, new_store, runs_of, write_inspec_subset, write_reviews_csv

SPACE = "cell: {fixed: gru}\n"
COMMON = ["--epochs", "1", "--max-trials", "1", "--verbose", "0", "--data-dir", str(SHARED_DATA)]
# Per app: (train flags for a small, fast model, evaluate flags that name the same data).
CASES = {
    "slot_filling": (["--units", "32", "--embedding-dim", "32", "--batch-size", "64", "--learning-rate", "0.01"], []),
    "sentiment": (
        ["--dataset", "{reviews}", "--units", "16", "--embedding-dim", "16", "--max-length", "30"],
        ["--dataset", "{reviews}"],
    ),
    "keywords": (
        ["--dataset", "{inspec}", "--layers", "1", "--units", "32", "--embedding-dim", "32", "--max-length", "200"],
        ["--dataset", "{inspec}"],
    ),
    "speech_ctc": (
        [
            "--train-utterances",
            "80",
            "--valid-utterances",
            "20",
            "--test-utterances",
            "20",
            "--units",
            "32",
            "--layers",
            "1",
            "--conv-filters",
            "16",
            "--stride",
            "2",
        ],
        ["--utterances", "20"],
    ),  # fmt: skip
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return {
        "inspec": f"liaad:{write_inspec_subset(folder / 'Inspec200.zip', 200)}",
        "reviews": f"csv:{write_reviews_csv(folder / 'reviews.csv')}",
    }


@pytest.mark.parametrize("name", list(CASES))
def test_evaluate_of_the_tuned_model_reproduces_the_jobs_best_test_metrics(name, tmp_path, data):
    import importlib

    app = importlib.import_module(f"apps.{name}").APP
    train_flags, evaluate_flags = ([f.format(**data) for f in flags] for flags in CASES[name])
    tracking_uri = new_store(tmp_path, "tuning")
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    code = runner.main(app, [
        "tune", *COMMON, *train_flags, "--search-space", str(space), "--tracking-uri", tracking_uri,
        "--experiment", "tuning", "--tuner-dir", str(tmp_path / "tuning"),
    ])  # fmt: skip
    assert code == 0
    parent = next(r for r in runs_of(tracking_uri, "tuning") if "tuning_job" in r.data.tags)
    best_test = {k[len("best_test_") :]: v for k, v in parent.data.metrics.items() if k.startswith("best_test_")}
    assert best_test, parent.data.metrics
    args = runner.build_parser(app).parse_args([
        "evaluate", "--model", f"runs:/{parent.info.run_id}/model", "--data-dir", str(SHARED_DATA),
        *evaluate_flags, "--tracking-uri", tracking_uri,
    ])  # fmt: skip
    metrics = saved.evaluate(app, args)
    for key, value in metrics.items():
        assert value == pytest.approx(best_test[key], abs=1e-9), key
    # The job's model was finished like a training run's: its learning curve and reports too.
    artifacts = {a.path for a in mlflow.MlflowClient(tracking_uri).list_artifacts(parent.info.run_id)}
    assert {"learning_curve.png", "trials.png"} <= artifacts
    if name == "sentiment":
        model = saved.load_model(f"runs:/{parent.info.run_id}/model", tracking_uri)
        weight = model.get_layer("classifier").get_layer("naive_bayes_weight").weight
        assert abs(float(np.asarray(weight))) > 1e-3  # fitted on the validation split, not the initial 0
        assert "best_fusion_ngram_weight" in parent.data.metrics
    if name == "keywords":
        assert any(k.startswith("best_ranking_") for k in parent.data.metrics)  # the fitted ranking
