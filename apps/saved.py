"""Saved models: loading one (a .keras file, an MLflow model folder or URI), `evaluate`, `predict`.

Only what the suite itself logs is loaded: a `.keras` file, read by Keras in safe mode (no
Python code from the file: a `Lambda` layer's function is refused), alone or inside an MLflow
model of the Keras flavor. Anything else, such as an MLflow model that asks for TensorFlow's
SavedModel path (`save_exported_model: true`, whose graph and initializers run when it is
loaded), is refused before any of it runs, unless the user passes `--unsafe-load`.
"""

import json
import sys
import zipfile
from pathlib import Path

import keras
import mlflow
import yaml

from apps.app import UserError

ACCEPTED = (
    "the suite loads a .keras file, or an MLflow model of the Keras flavor holding one "
    "(a folder with an MLmodel file, runs:/RUN_ID/model, models:/NAME/VERSION)"
)
UNSAFE_HINT = "If you trust the file and its author, pass --unsafe-load to load it anyway."


def load_model(location, tracking_uri=None, unsafe=False):
    """A saved serving model from a .keras file, an MLflow model folder, or an MLflow URI.

    With `unsafe`, Keras' safe mode is off and MLflow's exported (SavedModel) models load too:
    for files the user trusts; either may run code the file carries.
    """
    import layers  # noqa: F401  (registers the custom layers with Keras before loading)
    import pipelines.text  # noqa: F401

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    path = Path(location)
    if path.is_file():
        if path.suffix != ".keras":
            raise UserError(f"--model {location}: not a .keras file; {ACCEPTED}")
        return _load_keras_file(path, location, unsafe)
    if path.is_dir():
        return _load_mlflow_folder(path, location, unsafe)
    if "://" in location or location.startswith(("runs:/", "models:/")):
        try:
            # Files only: downloading runs nothing. The folder is then checked like a local one.
            folder = mlflow.artifacts.download_artifacts(artifact_uri=location)
        except Exception as error:  # MLflow raises several types for a missing model
            raise UserError(f"--model {location}: cannot load it from MLflow ({error})") from None
        return _load_mlflow_folder(Path(folder), location, unsafe)
    raise UserError(
        f"--model {location}: no such file or MLflow model. Pass a .keras file, an MLflow model "
        f"folder, or a URI such as runs:/RUN_ID/model or models:/NAME/VERSION."
    )


def _load_mlflow_folder(folder, location, unsafe):
    """The Keras model of an MLflow model folder, after checking its MLmodel file says what the suite logs."""
    description = folder / "MLmodel"
    if not description.is_file():
        raise UserError(f"--model {location}: a folder without an MLmodel file; {ACCEPTED}")
    try:
        flavors = (yaml.safe_load(description.read_text(encoding="utf-8")) or {}).get("flavors") or {}
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError) as error:
        raise UserError(f"--model {location}: its MLmodel file is not readable YAML ({error})") from None
    keras_flavor = flavors.get("keras") if isinstance(flavors, dict) else None
    if not isinstance(keras_flavor, dict):
        names = ", ".join(flavors) if isinstance(flavors, dict) and flavors else "none"
        raise UserError(f"--model {location}: not an MLflow model of the Keras flavor (flavors: {names}); {ACCEPTED}")
    if keras_flavor.get("save_exported_model"):
        if not unsafe:
            raise UserError(
                f"--model {location}: this MLflow model is a TensorFlow SavedModel (save_exported_model: "
                f"true), whose graph runs as it loads, so it was not loaded; {ACCEPTED}. {UNSAFE_HINT}"
            )
        model = mlflow.keras.load_model(str(folder))
        if not isinstance(model, keras.Model):
            raise UserError(f"--model {location}: loaded (--unsafe-load), but it is not a Keras model the app can use")
        return model
    data_name = keras_flavor.get("data", "data")
    if not isinstance(data_name, str) or not data_name.strip() or "\x00" in data_name:
        raise UserError(f"--model {location}: its MLmodel names no usable Keras data path (data: {data_name!r})")
    data = folder / data_name
    keras_file = data / "model.keras" if data.is_dir() else data.with_name(data.name + ".keras")
    if folder.resolve() not in keras_file.resolve().parents:
        raise UserError(f"--model {location}: its MLmodel points outside the model folder ({keras_file})")
    if not keras_file.is_file():
        raise UserError(f"--model {location}: the MLflow model has no Keras file (looked for {keras_file})")
    return _load_keras_file(keras_file, location, unsafe)


def _load_keras_file(path, location, unsafe):
    if not zipfile.is_zipfile(path):
        raise UserError(
            f"--model {location}: {path} is not a readable .keras file (a .keras file is a zip archive; "
            f"this one is damaged, truncated or of another kind). Use the model.keras a run saved, "
            f"or the run's MLflow model (runs:/RUN_ID/model)."
        )
    try:
        return keras.saving.load_model(path, safe_mode=not unsafe)
    except ValueError as error:
        if "safe_mode" in str(error) or "unsafe" in str(error).lower():
            raise UserError(
                f"--model {location}: the file carries Python code (a Lambda layer's function), which "
                f"Keras' safe mode refuses to run. {UNSAFE_HINT}"
            ) from None
        raise UserError(f"--model {location}: Keras cannot rebuild the model from {path} ({error})") from None
    except (OSError, zipfile.BadZipFile, KeyError, TypeError, EOFError) as error:
        raise UserError(
            f"--model {location}: {path} is damaged or truncated ({type(error).__name__}: {error}). "
            f"Use the model.keras a run saved, or the run's MLflow model (runs:/RUN_ID/model)."
        ) from None


def evaluate(app, args):
    model = load_model(args.model, args.tracking_uri, args.unsafe_load)
    metrics = app.evaluate_saved(model, args)
    if args.json:
        print(json.dumps(metrics, indent=1))
    else:
        for name, value in metrics.items():
            print(f"{args.split}_{name}: {value:.4f}")
    return metrics


def checked_inputs(inputs):
    """`predict`'s inputs, refused when there are none or one is empty (nothing to predict from)."""
    if not inputs:
        raise UserError("nothing to predict: pass inputs as arguments or one per line on standard input")
    empty = [index for index, text in enumerate(inputs, start=1) if not text.strip()]
    if empty:
        raise UserError(f"input {empty[0]} is empty: pass a non-empty text (or path) for each input")
    return list(inputs)


def predict(app, args):
    inputs = checked_inputs(args.inputs if args.inputs else [line.strip() for line in sys.stdin if line.strip()])
    model = load_model(args.model, args.tracking_uri, args.unsafe_load)
    return app.predict(model, inputs, args)


def run_command(app, args):
    """One of the app's own commands (`App.commands`) on the saved model of --model."""
    _, _, run = app.commands()[args.command]
    return run(load_model(args.model, args.tracking_uri, args.unsafe_load), args)
