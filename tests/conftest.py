import os
import tempfile

# Quiet TensorFlow's C++ logging before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Downloads and feature caches of the tests go to a fresh folder, not the user's cache.
os.environ.setdefault("RNN_SUITE_CACHE", tempfile.mkdtemp(prefix="rnn-suite-test-cache-"))
