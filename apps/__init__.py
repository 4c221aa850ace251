"""The suite's apps, one per task, sharing `apps.runner`."""

import os
import sys

# Quiet TensorFlow's C++ start-up logging before any app imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Keras imports scikit-learn, pandas and matplotlib when they are installed, for its scikit-learn
# wrappers, DataFrame inputs and image galleries: 1.6 s of every start on 2 cores (a third of
# `predict`'s wait, docs/performance.md). The suite uses none of those three through Keras, so
# Keras is imported with them hidden; they stay importable for the code that does use them.
_KERAS_EXTRAS = ("sklearn", "pandas", "matplotlib")
if "keras" not in sys.modules:
    _hidden = [name for name in _KERAS_EXTRAS if name not in sys.modules]
    sys.modules.update(dict.fromkeys(_hidden))  # None: `import` raises ImportError
    try:
        import keras  # noqa: F401
    finally:
        for _name in _hidden:
            if sys.modules.get(_name, 0) is None:
                del sys.modules[_name]
