"""The code of every logged model (MLflow's "models from code"): the app's `predict` behind pyfunc.

MLflow runs this file when it loads a logged model (`mlflow models serve`, `mlflow.pyfunc.load_model`),
with the suite's packages on the path (the model's code paths). The network is read from the
model's `.keras` artifact in Keras' safe mode, as `apps.saved` reads it. See `apps.serving`.
"""

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


class SuiteModel(mlflow.pyfunc.PythonModel):
    """Raw inputs (texts, or wav bytes for speech) -> the app's prediction records."""

    def load_context(self, context):
        from apps import saved, serving

        self.app = serving.app_of((context.model_config or {}).get("app"))
        self.model = saved.load_model(context.artifacts[serving.KERAS_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        # A DataFrame: MLflow checks a request against the logged signature (`apps.serving`) first.
        from apps import serving
        from apps.app import UserError
        from pipelines.sources import DataFormatError

        try:
            return serving.predict(self.app, self.model, model_input, params)
        except (UserError, DataFormatError) as error:
            # A 400 answer that says what is wrong, not a server error with a traceback.
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None


mlflow.models.set_model(SuiteModel())
