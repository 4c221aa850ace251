"""`--model` loads only what the suite logs: no code from a model file runs unless --unsafe-load."""

import importlib
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from apps import runner

APPS = ("sentiment", "slot_filling", "keywords", "speech_ctc", "text_autoencoder", "speech_autoencoder")


def _exported_mlflow_model(folder, target):
    """An MLflow Keras-flavor model exported as a SavedModel whose resource initializer writes
    `target` when TensorFlow loads it (what an attacker's model file can do)."""

    class Payload(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[])

        def _initialize(self):
            tf.io.write_file(str(target), "code from the model file ran")
            tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=1.0)

    module = tf.Module()
    module.payload = Payload()
    tf.saved_model.save(module, str(folder / "data" / "model"))
    flavor = {"data": "data", "keras_backend": "tensorflow", "save_exported_model": True}
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"keras": flavor}}))
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("exported")
    return _exported_mlflow_model(root / "model", root / "code_ran.txt"), root / "code_ran.txt"


@pytest.mark.parametrize("name", APPS)
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_an_exported_mlflow_model_is_refused_before_it_runs(name, command, exported, capsys):
    folder, ran = exported
    app = importlib.import_module(f"apps.{name}").APP
    argv = [command, "--model", str(folder)] + (["some input"] if command == "predict" else [])
    assert runner.main(app, argv) == 2
    error = capsys.readouterr().err
    assert "save_exported_model" in error and "--unsafe-load" in error
    assert not ran.exists()


@pytest.mark.parametrize(
    "name, argv",
    [("text_autoencoder", ["encode", "sentences.txt", "--output", "codes.npy"]),
     ("speech_autoencoder", ["search", "query.wav", "--in", "recordings"])],
)  # fmt: skip
def test_an_apps_own_commands_refuse_an_exported_model_too(name, argv, exported, capsys):
    folder, ran = exported
    app = importlib.import_module(f"apps.{name}").APP
    assert runner.main(app, [argv[0], "--model", str(folder), *argv[1:]]) == 2
    assert "save_exported_model" in capsys.readouterr().err
    assert not ran.exists()


def test_the_payload_is_real_it_runs_under_unsafe_load(exported, capsys):
    """The check above can fail: with --unsafe-load the same folder does run its code."""
    folder, ran = exported
    from apps.sentiment import APP

    assert runner.main(APP, ["predict", "--model", str(folder), "--unsafe-load", "a text"]) == 2
    assert ran.exists()
    assert "not a Keras model" in capsys.readouterr().err
    ran.unlink()


def _lambda_model(path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs))
    model.save(path)
    return path


def test_a_keras_file_with_a_lambda_is_refused_with_a_message(tmp_path):
    from apps import saved

    path = _lambda_model(tmp_path / "lambda.keras")
    with pytest.raises(runner.UserError, match="safe mode.*--unsafe-load"):
        saved.load_model(str(path))
    model = saved.load_model(str(path), unsafe=True)
    np.testing.assert_allclose(model(np.ones((1, 3), "float32")), 2.0 * np.ones((1, 3)))


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "empty", "member removed"])
def test_a_damaged_keras_file_says_so(tmp_path, damage):
    from apps import saved

    good = tmp_path / "good.keras"
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(good)
    path = tmp_path / "bad.keras"
    data = good.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "not a zip":
        path.write_bytes(b"PK\x03\x04 but nothing else" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w") as target:
            for item in source.infolist():
                if item.filename != "config.json":
                    target.writestr(item, source.read(item))
    with pytest.raises(runner.UserError) as error:
        saved.load_model(str(path))
    message = str(error.value)
    assert str(path) in message and "not found" not in message.lower()


@pytest.mark.parametrize(
    "flavors",
    [{"keras": {"data": "../outside"}},
     {"python_function": {"artifacts": {"keras_model": {"path": "../outside.keras"}}, "model_code_path": "x.py"}}],
)  # fmt: skip
def test_a_model_folder_pointing_outside_itself_is_refused(tmp_path, flavors):
    from apps import saved

    folder = tmp_path / "model"
    folder.mkdir()
    _lambda_model(tmp_path / "outside.keras")
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": flavors}))
    with pytest.raises(runner.UserError, match="outside the model folder"):
        saved.load_model(str(folder))


@pytest.mark.parametrize("inputs", [[""], ["a text", "   "]])
def test_an_empty_predict_input_is_an_error(inputs, capsys, tmp_path):
    from apps.slot_filling import APP

    assert runner.main(APP, ["predict", "--model", str(tmp_path / "none.keras"), *inputs]) == 2
    assert "is empty" in capsys.readouterr().err
