"""What a command's start costs: Keras is imported without the optional extras it would pull in."""

import subprocess
import sys

from tests.support import REPOSITORY

CHECK = """
import sys
import apps
import keras.src.trainers.data_adapters.array_slicing as slicing
import keras.src.wrappers.fixes as wrappers
print(wrappers.sklearn is None, slicing.pandas is None, *(name in sys.modules for name in ("sklearn", "pandas", "matplotlib")))
import matplotlib.pyplot, pandas, sklearn.decomposition
print(pandas.DataFrame({"a": [1]}).shape, sklearn.decomposition.PCA.__name__)
"""


def test_keras_starts_without_sklearn_pandas_matplotlib_which_stay_importable():
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=REPOSITORY, capture_output=True, text=True, timeout=120, check=True
    )
    hidden, usable = result.stdout.splitlines()
    assert hidden == "True True False False False"  # Keras saw none of them; none was imported
    assert usable == "(1, 1) PCA"  # and the suite's own uses still import them
