"""Settings that travel inside a saved model."""

import keras

from layers.base import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class Metadata(keras.layers.Layer):
    """The identity, carrying `values` (a JSON-serializable dict) in its config.

    Put on a model's input, it keeps what a prediction needs to prepare its
    input the way training did (e.g. the audio feature settings), in the
    `.keras` file and the logged MLflow model alike.
    """

    def __init__(self, values, **kwargs):
        super().__init__(**kwargs)
        self.values = dict(values)
        self.supports_masking = True

    def call(self, inputs):
        return inputs

    def get_config(self):
        return {**super().get_config(), "values": self.values}
