"""Saved models: loading one (a .keras file, an MLflow model folder or URI), `evaluate`, `predict`.

Only what the suite itself logs is loaded: a `.keras` file, read by Keras in safe mode (no
Python code from the file: a `Lambda` layer's function is refused), alone or inside an MLflow
model: the suite's pyfunc model (`apps.serving`; its code is not run here, only its `.keras`
artifact is read) or, from older runs, the Keras flavor. Anything else, such as an MLflow model that asks for TensorFlow's
SavedModel path (`save_exported_model: true`, whose graph and initializers run when it is
loaded), is refused before any of it runs, unless the user passes `--unsafe-load`.
"""

import json
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

from apps.app import UserError

ACCEPTED = (
    "the suite loads a .keras file, or an MLflow model a run of the suite logged holding one "
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

    path = Path(location)
    if path.is_file():
        if path.suffix != ".keras":
            raise UserError(f"--model {location}: not a .keras file; {ACCEPTED}")
        return _load_keras_file(path, location, unsafe)
    if path.is_dir():
        return _load_mlflow_folder(path, location, unsafe)
    if "://" in location or location.startswith(("runs:/", "models:/")):
        import mlflow  # only for a model in a store: a local file loads without it (predict's start-up)

        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        # Downloaded into a folder removed once the model is in memory (MLflow's own default is a
        # temporary folder nobody removes: a copy of the model left behind by every command).
        with tempfile.TemporaryDirectory(prefix="rnn-suite-model-") as download:
            try:
                # Files only: downloading runs nothing. The folder is then checked like a local one.
                folder = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=download)
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
    if not isinstance(flavors, dict):
        flavors = {}
    keras_flavor = flavors.get("keras")
    suite_artifact = _suite_artifact(flavors.get("python_function"))
    if not isinstance(keras_flavor, dict) and suite_artifact is None:
        names = ", ".join(flavors) or "none"
        raise UserError(
            f"--model {location}: neither a model the suite logged nor of the Keras flavor (flavors: {names}); {ACCEPTED}"
        )
    if not isinstance(keras_flavor, dict):
        return _load_keras_file(_inside(folder, folder / suite_artifact, location), location, unsafe)
    if keras_flavor.get("save_exported_model"):
        if not unsafe:
            raise UserError(
                f"--model {location}: this MLflow model is a TensorFlow SavedModel (save_exported_model: "
                f"true), whose graph runs as it loads, so it was not loaded; {ACCEPTED}. {UNSAFE_HINT}"
            )
        import keras
        import mlflow

        model = mlflow.keras.load_model(str(folder))
        if not isinstance(model, keras.Model):
            raise UserError(f"--model {location}: loaded (--unsafe-load), but it is not a Keras model the app can use")
        return model
    data_name = keras_flavor.get("data", "data")
    if not isinstance(data_name, str) or not data_name.strip() or "\x00" in data_name:
        raise UserError(f"--model {location}: its MLmodel names no usable Keras data path (data: {data_name!r})")
    data = folder / data_name
    keras_file = data / "model.keras" if data.is_dir() else data.with_name(data.name + ".keras")
    return _load_keras_file(_inside(folder, keras_file, location), location, unsafe)


def _suite_artifact(pyfunc_flavor):
    """The path of the .keras artifact in the pyfunc flavor of a model the suite logged, or None."""
    from apps.serving import KERAS_ARTIFACT

    if not isinstance(pyfunc_flavor, dict) or not isinstance(pyfunc_flavor.get("artifacts"), dict):
        return None
    artifact = pyfunc_flavor["artifacts"].get(KERAS_ARTIFACT)
    path = artifact.get("path") if isinstance(artifact, dict) else None
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        return None
    return path


def _inside(folder, keras_file, location):
    """`keras_file` if it is a file inside the model folder, else a UserError."""
    if folder.resolve() not in keras_file.resolve().parents:
        raise UserError(f"--model {location}: its MLmodel points outside the model folder ({keras_file})")
    if not keras_file.is_file():
        raise UserError(f"--model {location}: the MLflow model has no Keras file (looked for {keras_file})")
    return keras_file


def _load_keras_file(path, location, unsafe):
    if not zipfile.is_zipfile(path):
        raise UserError(
            f"--model {location}: {path} is not a readable .keras file (a .keras file is a zip archive; "
            f"this one is damaged, truncated or of another kind). Use the model.keras a run saved, "
            f"or the run's MLflow model (runs:/RUN_ID/model)."
        )
    import keras

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
    """`predict`: the app's records for the inputs, shown one by one (as JSON with --json)."""
    inputs = checked_inputs(args.inputs if args.inputs else [line.strip() for line in sys.stdin if line.strip()])
    inputs = app.read_inputs(inputs)
    model = load_model(args.model, args.tracking_uri, args.unsafe_load)
    records = app.predict(model, inputs, args)
    for record in records:
        if args.json:
            print(json.dumps(record, ensure_ascii=False))
        else:
            app.show(record, args)
    return records


def run_command(app, args):
    """One of the app's own commands (`App.commands`) on the saved model of --model."""
    _, _, run = app.commands()[args.command]
    return run(load_model(args.model, args.tracking_uri, args.unsafe_load), args)
