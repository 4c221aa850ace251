"""Serving: the MLflow model each run logs, which answers over REST with what `predict` prints.

A run logs its model as an MLflow pyfunc model *from code* (no pickle): the serving model's
`.keras` file as an artifact, the suite's packages as code paths (so it loads outside a
checkout, with the requirements installed) and `apps/served_model.py` as its code, which hands
each request to the app's own `predict`. So `mlflow models serve -m runs:/RUN_ID/model` takes
what `predict` takes and answers with the records `predict --json` prints:

    curl 127.0.0.1:5000/invocations -H 'Content-Type: application/json' \\
         -d '{"inputs": {"text": ["show me flights from boston to denver"]}}'
    {"predictions": [{"text": "show me ...", "words": [...], "slots": [...], "intent": "flight"}]}

Text apps read the column "text"; the speech apps read "audio", a wav file's bytes (base64 in
JSON: MLflow's binary column). `predict`'s own flags are the model's parameters
(`"params": {"beam_width": 10}`), checked as the command line checks them.
"""

import argparse
import functools
import importlib
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

from apps.app import UserError

KERAS_ARTIFACT = "keras_model"
# The suite's packages, shipped with every logged model (its code paths).
PACKAGES = ("apps", "layers", "pipelines", "fitting")
ROOT = Path(__file__).resolve().parent.parent
MODEL_CODE = Path(__file__).with_name("served_model.py")
# `predict` flags that are about the command line, not the prediction.
NOT_PARAMETERS = {"help", "model", "inputs", "json", "unsafe_load", "tracking_uri"}
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def input_column(app):
    return "audio" if app.input_kind == "audio" else "text"


@functools.cache  # built once per app: a server asks for it on every request
def predict_parameters(app):
    """{name: argparse action} of the app's `predict` flags that change the prediction."""
    from apps import cli

    parser = cli.build_parser(app)
    predict = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["predict"]
    skipped = NOT_PARAMETERS | set(app.display_flags)
    return {a.dest: a for a in predict._actions if a.dest not in skipped and a.option_strings}


def signature(app):
    """The pyfunc signature: one input column, `predict`'s flags as parameters (with their defaults)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    specs = []
    for name, action in predict_parameters(app).items():
        default = action.default
        kind = {bool: "boolean", int: "long", float: "double", str: "string"}.get(type(default))
        if isinstance(action, argparse._StoreTrueAction):
            kind, default = "boolean", False
        if kind is not None:
            specs.append(ParamSpec(name, kind, default))
    column = ColSpec("binary" if app.input_kind == "audio" else "string", input_column(app))
    return ModelSignature(inputs=Schema([column]), params=ParamSchema(specs) if specs else None)


def log_model(app, local_model, registered_model_name=None, metadata=None):
    """Logs `local_model` (a serving model's .keras file) as the active run's `model`; its ModelInfo."""
    import mlflow

    from apps import tracking

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        # MLflow's advice to log an input example: the signature says what the model takes, and
        # the tests serve every app's model for real.
        warnings.filterwarnings("ignore", message=".*An input example was not provided.*", category=UserWarning)
        code = [_clean_copy(ROOT / package, Path(folder)) for package in PACKAGES]
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts={KERAS_ARTIFACT: str(local_model)},
            code_paths=code,
            model_config={"app": app_module(app)},
            signature=signature(app),
            pip_requirements=tracking.model_requirements(),
            registered_model_name=registered_model_name,
            metadata=metadata,
        )


def _clean_copy(package, folder):
    """`package` copied into `folder` without caches: what a logged model ships."""
    import shutil

    return str(shutil.copytree(package, folder / package.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")))


def app_module(app):
    """The importable name of `app`'s module: under `python -m apps.APP` the class lives in
    `__main__`, which a server could not import; the module's spec keeps its real name."""
    name = type(app).__module__
    if name == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        if spec is None or not spec.name:
            raise UserError("log the model from `python -m apps.APP` or an imported app module, not a script")
        name = spec.name
    return name


def app_of(module_name):
    """The `APP` of the app module a logged model names (e.g. "apps.slot_filling")."""
    if not isinstance(module_name, str) or not MODULE_NAME.match(module_name):
        raise UserError(f"the model's configuration names no app module (app: {module_name!r})")
    try:
        app = importlib.import_module(module_name).APP
    except (ImportError, AttributeError) as error:
        raise UserError(f"the model's app {module_name} cannot be loaded ({error})") from None
    return app


def predict_arguments(app, params):
    """`predict`'s arguments with `params` (the request's parameters) in place of the defaults,
    each checked by its flag's own type and choices; a bad one is a UserError naming it."""
    actions = predict_parameters(app)
    args = argparse.Namespace(**{name: action.default for name, action in actions.items()})
    for name, value in (params or {}).items():
        action = actions.get(name)
        if action is None:
            raise UserError(f"params: unknown parameter {name!r}; this model takes {', '.join(actions) or 'none'}")
        if action.type is not None and value is not None:
            try:
                value = action.type(str(value))
            except (argparse.ArgumentTypeError, ValueError) as error:
                raise UserError(f"params {name}: {error or 'invalid value'} (got {value!r})") from None
        if action.choices is not None and value not in action.choices:
            raise UserError(f"params {name}: must be one of {', '.join(map(str, action.choices))}, got {value!r}")
        setattr(args, name, value)
    return args


def column_values(model_input, column):
    """The request's inputs as a list: a DataFrame's (or dict's) `column`, or a list of them."""
    if hasattr(model_input, "columns"):
        if column not in model_input.columns:
            raise UserError(
                f"the request has no {column!r} column (columns: {', '.join(map(str, model_input.columns))})"
            )
        return list(model_input[column])
    if isinstance(model_input, dict):
        if column not in model_input:
            raise UserError(f"the request has no {column!r} input")
        values = model_input[column]
        return [values] if isinstance(values, (str, bytes)) else list(values)
    if isinstance(model_input, (str, bytes)):
        return [model_input]
    return list(model_input)


def predict(app, serving_model, model_input, params=None):
    """The records of `app.predict` for a request; audio bytes are read from temporary files."""
    from apps.saved import checked_inputs

    args = predict_arguments(app, params)
    values = column_values(model_input, input_column(app))
    if app.input_kind != "audio":
        texts = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in values]
        return app.predict(serving_model, checked_inputs(texts), args)
    for number, value in enumerate(values, start=1):
        if not isinstance(value, bytes) or not value:
            raise UserError(f"input {number}: expected a wav file's bytes (base64 in JSON), got {type(value).__name__}")
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for number, value in enumerate(values, start=1):
            path = os.path.join(folder, f"input-{number}.wav")
            Path(path).write_bytes(value)
            paths.append(path)
        records = app.predict(serving_model, paths, args)
    for number, record in enumerate(records, start=1):
        record["file"] = f"input {number}"  # not the temporary path
    return records
