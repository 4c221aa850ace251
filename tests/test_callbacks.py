"""The runner's callbacks on a tiny model."""

import os
import signal

import keras
import numpy as np
import pytest

from apps.callbacks import AveragedWeights, InterruptAtBatchEnd, moving_averages


class SwallowedCtrlC(keras.callbacks.Callback):
    """Sends the signal `times` times at batch 2 and drops a KeyboardInterrupt, as a finalizer would."""

    def __init__(self, signum=signal.SIGINT, times=1, swallow=True):
        super().__init__()
        self.batches = 0
        self.signum, self.times, self.swallow = signum, times, swallow
        self.raised_at_once = False

    def on_train_batch_begin(self, batch, logs=None):
        self.batches += 1
        if self.batches == 2:
            for _ in range(self.times):
                try:
                    os.kill(os.getpid(), self.signum)  # its handler runs inside this try
                except KeyboardInterrupt:
                    self.raised_at_once = True
                    if not self.swallow:
                        raise


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_or_kill_stops_training_at_the_batch_end_even_when_swallowed(signum):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((64, 3), "float32"), np.zeros((64, 1), "float32")
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    swallow = SwallowedCtrlC(signum)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[InterruptAtBatchEnd(), swallow])
    assert swallow.batches == 2  # stopped after the batch in which the signal came, not 32 batches later
    assert not swallow.raised_at_once  # the first signal waits for the batch's end
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_second_signal_stops_training_at_once():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((64, 3), "float32"), np.zeros((64, 1), "float32")
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    twice = SwallowedCtrlC(signal.SIGINT, times=2, swallow=False)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[InterruptAtBatchEnd(), twice])
    assert twice.raised_at_once and twice.batches == 2
    assert {s: signal.getsignal(s) for s in before} == before


def ema_model(momentum):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.05, use_ema=True, ema_momentum=momentum), loss="mse")
    return model


def weights_of(model):
    return [np.array(w) for w in model.trainable_weights]


def test_averaged_weights_are_the_moving_average_of_the_trained_ones_and_a_backup_keeps_both(tmp_path):
    momentum, batches = 0.8, 8
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = (x @ rng.normal(size=(3, 2))).astype("float32")
    model = ema_model(momentum)
    trained, averaged, after = [], [], []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda *_, **__: trained.append(weights_of(model)))
    peek = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_, **__: averaged.append(weights_of(model)))
    back = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_, **__: after.append(weights_of(model)))
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    callbacks = [record, *AveragedWeights().callbacks([peek]), back, backup]
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
    assert len(trained) == 2 * batches

    # Keras' rule, in numpy: the average starts at the weights after the first step.
    expected, reference = [], None
    for step, weights in enumerate(trained, start=1):
        reference = (
            weights if reference is None else [momentum * a + (1 - momentum) * w for a, w in zip(reference, weights)]
        )
        if step % batches == 0:
            expected.append(reference)
    for epoch in range(2):
        for got, want in zip(averaged[epoch], expected[epoch]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        # After the epoch-end callbacks, the model trains on from its own weights.
        for got, want in zip(after[epoch], trained[(epoch + 1) * batches - 1]):
            np.testing.assert_array_equal(got, want)
        assert not np.allclose(averaged[epoch][0], after[epoch][0])

    # A training resumed from the backup (taken after the swap back) goes on from the trained
    # weights, with the averages where they were.
    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    interrupted_dir = tmp_path / "interrupted"
    model = ema_model(momentum)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                  callbacks=[*AveragedWeights().callbacks([]),
                             keras.callbacks.BackupAndRestore(str(interrupted_dir)), StopAfterFirstEpoch()])  # fmt: skip
    resumed = ema_model(momentum)
    at_resume = []
    resumed.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=lambda *_, **__: at_resume.append(
                    (weights_of(resumed), [np.array(a) for _, a in moving_averages(resumed)]))),
                    *AveragedWeights().callbacks([]), keras.callbacks.BackupAndRestore(str(interrupted_dir))])  # fmt: skip
    weights, averages = at_resume[0]
    for got, want in zip(weights, trained[batches - 1]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(averages, expected[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


class ValidationScores(keras.callbacks.Callback):
    """Logs the given val_slot_f1 per epoch, as the app's EpochEvaluation does before later callbacks."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores
        self.rates = []

    def on_epoch_end(self, epoch, logs=None):
        logs["val_slot_f1"] = self.scores[epoch]

    def on_train_end(self, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


@pytest.mark.parametrize(
    "flags, scores, rate",
    [
        ([], [0.5, 0.5, 0.5, 0.5, 0.5], 0.01),  # off by default
        (["--reduce-lr", "2"], [0.5, 0.6, 0.6, 0.6, 0.7], 0.005),  # epochs 3 and 4 no better: halved once
        (["--reduce-lr", "2"], [0.5, 0.5, 0.5, 0.5, 0.5], 0.0025),  # halved after epochs 3 and 5
        (["--reduce-lr", "1"], [0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], 0.01 / 64),  # floor: 1/64
    ],
)
def test_reduce_lr_halves_the_rate_when_the_validation_metric_stalls(flags, scores, rate):
    from apps import runner, training_loop
    from apps.slot_filling import APP

    args = runner.build_parser(APP).parse_args(["train", "--learning-rate", "0.01", *flags])
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss="mse")
    logger = ValidationScores(scores)
    x, y = np.zeros((8, 3), "float32"), np.zeros((8, 1), "float32")
    model.fit(x, y, epochs=len(scores), verbose=0, callbacks=[logger, *training_loop.rate_schedule(APP, args)])
    assert logger.rates[-1] == pytest.approx(rate)
