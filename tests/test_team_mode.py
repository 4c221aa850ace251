"""Team mode: a real `mlflow server` on PostgreSQL, artifacts served by the server."""

import json
import urllib.parse
import urllib.request

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest

import layers  # noqa: F401  (registers the custom layers the logged models hold)
from apps import runner, saved
from apps.sentiment import APP
from tests.servers import chromium, mlflow_server, postgres
from tests.support import TEST_ARTIFACTS, write_reviews_csv

pytestmark = pytest.mark.data  # trains on MR sentences

TEXTS = ["a gorgeous, witty, seductive movie", "a dull, lifeless and overlong film"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("team")
    with postgres(root) as database:
        with mlflow_server(database, root / "artifacts", root / "mlflow-server.log") as url:
            yield {"url": url, "root": root, "database": database}


def rest(url, endpoint, **query):
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}", timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def trained(server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("team-run")
    reviews = write_reviews_csv(folder / "reviews.csv")
    code = runner.main(APP, [
        "train", "--dataset", f"csv:{reviews}", "--embedding-dim", "16", "--units", "16", "--max-length", "30",
        "--epochs", "2", "--learning-rate", "0.01", "--verbose", "0", "--tracking-uri", server["url"],
        "--experiment", "team", "--register-model", "team-sentiment", "--checkpoint-dir", str(folder / "checkpoints"),
    ])  # fmt: skip
    assert code == 0
    return {"folder": folder, "reviews": reviews}


def test_a_training_against_the_server_reads_back_through_the_rest_api(server, trained):
    url = server["url"]
    experiment = rest(url, "experiments/get-by-name", experiment_name="team")["experiment"]
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/runs/search", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"experiment_ids": [experiment["experiment_id"]]}).encode(),
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        runs = json.loads(response.read())["runs"]
    assert len(runs) == 1
    run = runs[0]
    assert run["info"]["status"] == "FINISHED"
    assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:")  # stored by the server, not by us
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    history = rest(url, "metrics/get-history", run_id=run["info"]["run_id"], metric_key="val_accuracy")["metrics"]
    assert sorted(m["step"] for m in history) == [0, 1]
    artifacts = {f["path"] for f in rest(url, "artifacts/list", run_id=run["info"]["run_id"])["files"]}
    reports = {f["path"] for f in rest(url, "artifacts/list", run_id=run["info"]["run_id"], path="reports")["files"]}
    assert "learning_curve.png" in artifacts and "reports/confusion_matrix_test.png" in reports
    assert list((server["root"] / "artifacts").rglob("learning_curve.png"))  # in the server's store

    # The logged test accuracy is what the model read back from the server scores on the test split.
    args = runner.build_parser(APP).parse_args([
        "evaluate", "--model", "models:/team-sentiment/1", "--dataset", f"csv:{trained['reviews']}",
        "--tracking-uri", url,
    ])  # fmt: skip
    assert saved.evaluate(APP, args)["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-9)


def test_the_registered_model_loads_by_name_and_version_and_predicts_as_the_local_checkpoint(server, trained):
    mlflow.set_tracking_uri(server["url"])
    versions = mlflow.MlflowClient().search_model_versions("name = 'team-sentiment'")
    assert [v.version for v in versions] == ["1"]
    served = mlflow.pyfunc.load_model("models:/team-sentiment/1")
    records = served.predict(pd.DataFrame({"text": TEXTS}))
    labels = served.metadata.metadata["labels"]
    probabilities = np.array([[r["probabilities"][label] for label in labels] for r in records])
    assert probabilities.shape == (2, 2)
    # Independent path: the serving model the run saved on local disk.
    local = keras.saving.load_model(next((trained["folder"] / "checkpoints").rglob("model.keras")))
    expected = keras.ops.convert_to_numpy(local({"text": np.array(TEXTS, dtype=object)}))
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)


def test_the_mlflow_ui_shows_the_run_and_its_metric_in_a_real_browser(server, trained):
    mlflow.set_tracking_uri(server["url"])
    run = mlflow.search_runs(experiment_names=["team"], output_format="list")[0]
    page = f"{server['url']}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    artifacts = TEST_ARTIFACTS / "mlflow-ui"
    artifacts.mkdir(parents=True, exist_ok=True)
    dom = chromium("--dump-dom", page)
    (artifacts / "run-page.html").write_text(dom)
    chromium(f"--screenshot={artifacts / 'run-page.png'}", "--window-size=1400,2000", page)
    assert run.info.run_name in dom
    assert "test_accuracy" in dom, f"the metric is not on the page; see {artifacts}"
    assert str(run.data.metrics["test_accuracy"]) in dom  # its value, as the metrics table prints it
    assert (artifacts / "run-page.png").stat().st_size > 10_000
