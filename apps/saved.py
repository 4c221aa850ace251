"""Saved models: loading one (a .keras file, an MLflow model folder or URI), `evaluate`, `predict`."""

import json
import sys
from pathlib import Path

import keras
import mlflow

from apps.app import UserError


def load_model(location, tracking_uri=None):
    """A saved serving model from a .keras file, an MLflow model folder, or an MLflow URI."""
    import layers  # noqa: F401  (registers the custom layers with Keras before loading)
    import pipelines.text  # noqa: F401

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    path = Path(location)
    if path.is_file() and path.suffix == ".keras":
        return keras.saving.load_model(path)
    if path.is_dir() and (path / "MLmodel").exists():
        return mlflow.keras.load_model(str(path))
    if "://" in location or location.startswith(("runs:/", "models:/")):
        try:
            return mlflow.keras.load_model(location)
        except Exception as error:  # MLflow raises several types for a missing model
            raise UserError(f"--model {location}: cannot load it from MLflow ({error})") from None
    raise UserError(
        f"--model {location}: no such file or MLflow model. Pass a .keras file, an MLflow model "
        f"folder, or a URI such as runs:/RUN_ID/model or models:/NAME/VERSION."
    )


def evaluate(app, args):
    model = load_model(args.model, args.tracking_uri)
    metrics = app.evaluate_saved(model, args)
    if args.json:
        print(json.dumps(metrics, indent=1))
    else:
        for name, value in metrics.items():
            print(f"{args.split}_{name}: {value:.4f}")
    return metrics


def predict(app, args):
    inputs = args.inputs or [line.strip() for line in sys.stdin if line.strip()]
    if not inputs:
        raise UserError("nothing to predict: pass inputs as arguments or one per line on standard input")
    model = load_model(args.model, args.tracking_uri)
    return app.predict(model, inputs, args)
