"""The suite's apps, one per task, sharing `apps.runner`."""

import os

# Quiet TensorFlow's C++ start-up logging before any app imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
