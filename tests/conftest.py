import os
import tempfile

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
