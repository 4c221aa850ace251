import os
import tempfile

import pytest

# Quiet TensorFlow's C++ logging before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Downloads and feature caches of the tests go to a fresh folder, not the user's cache.
os.environ.setdefault("RNN_SUITE_CACHE", tempfile.mkdtemp(prefix="rnn-suite-test-cache-"))

# The layer tests also run on Keras' JAX backend (KERAS_BACKEND=jax). On a GPU, JAX multiplies
# float32 matrices in TF32 by default (10-bit mantissas), far from the float64 numpy references
# the tests compare with: ask for full float32 products there.
if os.environ.get("KERAS_BACKEND") == "jax":
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
elif os.environ.get("KERAS_BACKEND") == "torch":
    import torch

    # The same for PyTorch's cuDNN convolutions and matrix products, which may use TF32 on a GPU.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def pytest_collection_modifyitems(config, items):
    """The tests that read the local data sets (their module imports SHARED_DATA, or is marked
    `data`) skip without them, saying where to point RNN_SUITE_DATA; under
    RNN_SUITE_REQUIRE_SERVICES=1 the run fails instead."""
    from tests.support import DATA_AVAILABLE, DATA_MISSING, REQUIRE_SERVICES

    if DATA_AVAILABLE:
        return
    if REQUIRE_SERVICES:
        pytest.exit(f"{DATA_MISSING} (RNN_SUITE_REQUIRE_SERVICES=1)", returncode=1)
    for item in items:
        if "SHARED_DATA" in vars(item.module) or item.get_closest_marker("data"):
            item.add_marker(pytest.mark.skip(reason=DATA_MISSING))


@pytest.fixture(scope="module")
def inspec400(tmp_path_factory):
    """Inspec's first 400 abstracts as a LIAAD zip (`liaad:PATH`): split 200/100/100, a tagger
    trains on it in seconds."""
    from tests.support import write_inspec_subset

    return write_inspec_subset(tmp_path_factory.mktemp("data") / "Inspec400.zip", 400)
