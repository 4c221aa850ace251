"""The one path that finishes a trained model, for every way of training one.

A single `train`, each fold of `--cv`, the ensemble of `--members` and the best
trial of `tune` all end here: the app's last step (`App.after_training`), the
test metrics beside the baseline's, the learning curve and reports, the assets,
and the serving model saved and logged to MLflow. So the model a tuning job logs
is the model `train` would log with the same flags.
"""

import contextlib
import json
import time

import mlflow

from apps import serving, tracking
from apps.training_loop import evaluate


def curve_keys(app):
    """The per-epoch metrics the learning curve draws."""
    keys = ["loss", "val_loss", app.monitor]
    return keys + [name for name in app.curve_metrics if name not in keys]


def run_name(args):
    """DATASET-[bi]CELL[-xLAYERS]-sSEED: a run's default name."""
    parts = [args.dataset, ("bi" if args.bidirectional else "") + args.cell]
    if args.layers > 1:
        parts.append(f"x{args.layers}")
    parts.append(f"s{args.seed}")
    return "-".join(parts)


def finish_model(app, args, model, data, folder, history, final=None, started=None, prefix=""):
    """Finishes `model` (the training model, best weights loaded) in the active MLflow run.

    Logs `final` (e.g. the best epoch) with the app's after-training metrics, its test
    metrics (`test_*`) and the baseline's, each name after `prefix` (`best_` for a tuning
    job), `train_seconds` since `started`, the learning curve of `history` ({metric: points}),
    the app's reports and assets, and the serving model, saved as FOLDER/model.keras and
    logged as the run's `model` (`apps.serving`). Returns the metrics.
    """
    final = dict(final or {})
    final.update(app.after_training(model, data))
    if started is not None:
        final["train_seconds"] = time.perf_counter() - started
    has_test = data.has_split("test")
    report_split = "test" if has_test else "valid"
    if has_test:
        final.update({f"test_{k}": v for k, v in evaluate(app, model, data, "test").items()})
        final.update({f"test_{k}": v for k, v in app.baseline_metrics(data, "test").items()})
    else:
        print(f"warning: {args.dataset} has no test split here; reports describe the validation split")
    final = {f"{prefix}{k}": v for k, v in final.items()}
    mlflow.log_metrics(final)

    figure = tracking.learning_curve(history, f"{app.name}: {args.dataset}, {run_name(args)}")
    tracking.log_report("learning_curve.png", figure)
    for name, report in app.reports(app.evaluation_model(model, data), data, report_split).items():
        tracking.log_report(f"reports/{name}", report)
    assets = folder / "assets"
    app.save_assets(data, assets)
    if assets.exists():
        mlflow.log_artifacts(str(assets), "assets")

    serving_model = app.serving_model(model, data, args)
    local_model = folder / "model.keras"
    folder.mkdir(parents=True, exist_ok=True)
    with _as_uncompiled(model):
        serving_model.save(local_model)
    info = serving.log_model(
        app,
        local_model,
        registered_model_name=args.register_model,
        # Plain JSON types: layer attributes are Keras-tracked lists and dicts.
        metadata=json.loads(json.dumps(app.model_metadata(serving_model))),
    )
    run_id = mlflow.active_run().info.run_id
    summary = "  ".join(f"{k} {v:.4f}" for k, v in final.items() if isinstance(v, float))
    print(f"\nrun {run_id} finished: {summary}")
    print(f"model: {local_model}  (MLflow: runs:/{run_id}/model, {info.model_uri})")
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        print(f"MLflow UI: {uri}")  # a tracking server serves its own UI
    else:
        print(f"MLflow UI: mlflow ui --backend-store-uri {uri}  -> http://127.0.0.1:5000")
    return final


@contextlib.contextmanager
def _as_uncompiled(model):
    """`model` as if never compiled, for a while. A serving model holds the trained network, and
    Keras would save the network's optimizer state with it (Adam's: twice the weights, which
    tripled the file and slowed every load) and its compile settings, which make the loaded network
    build an optimizer of its own and warn that the saved one does not fit."""
    if not getattr(model, "compiled", False):  # e.g. an ensemble built from its members
        yield
        return
    optimizer = model.optimizer
    model.optimizer, model.compiled = None, False
    try:
        yield
    finally:
        model.optimizer, model.compiled = optimizer, True
