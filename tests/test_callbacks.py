"""The runner's callbacks on a tiny model."""

import os
import signal

import keras
import numpy as np
import pytest

from apps.callbacks import InterruptAtBatchEnd


class SwallowedCtrlC(keras.callbacks.Callback):
    """Sends SIGINT at batch 2 and drops the KeyboardInterrupt, as a finalizer would."""

    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.batches += 1
        if self.batches == 2:
            try:
                os.kill(os.getpid(), signal.SIGINT)  # its handler runs inside this try
            except KeyboardInterrupt:
                pass


def test_ctrl_c_stops_training_at_the_batch_end_even_when_swallowed():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((64, 3), "float32"), np.zeros((64, 1), "float32")
    before = signal.getsignal(signal.SIGINT)
    swallow = SwallowedCtrlC()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[InterruptAtBatchEnd(), swallow])
    assert swallow.batches == 2  # stopped after the batch in which Ctrl-C came, not 32 batches later
    assert signal.getsignal(signal.SIGINT) is before
