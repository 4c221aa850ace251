"""Training callbacks of the shared runner: evaluation, best-model checkpoint, MLflow logging."""

import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import keras
import mlflow

from apps.app import UserError


class EpochEvaluation(keras.callbacks.Callback):
    """Adds the app's own validation metrics (e.g. slot F1) to each epoch's logs.

    Put it first: the callbacks after it (checkpoint, MLflow, and Keras' History
    and progress bar, which Keras appends last) see the metrics.
    """

    def __init__(self, evaluate, prefix="val_"):
        super().__init__()
        self.evaluate = evaluate
        self.prefix = prefix

    def on_epoch_end(self, epoch, logs=None):
        metrics = {self.prefix + name: value for name, value in self.evaluate(self.model).items()}
        if logs is not None:
            logs.update(metrics)


class TimeLimit(keras.callbacks.Callback):
    """--time-limit: stops training at the end of an epoch when another epoch as long as the
    longest so far would end after `minutes` of training (a budget, e.g. "90 minutes on 2 CPU
    cores"); tags the run `stopped_by=time_limit`."""

    def __init__(self, minutes, clock=time.monotonic):
        super().__init__()
        self.seconds = 60.0 * minutes
        self.clock = clock
        self.started = self.epoch_started = None
        self.longest = 0.0

    def on_train_begin(self, logs=None):
        self.started = self.clock()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self.longest = max(self.longest, now - self.epoch_started)
        if now - self.started + self.longest > self.seconds:
            self.model.stop_training = True
            print(f"\n--time-limit: {(now - self.started) / 60:.1f} minutes trained; another epoch "
                  f"(about {self.longest / 60:.1f}) would pass {self.seconds / 60:g}: stopping")  # fmt: skip
            if mlflow.active_run():
                mlflow.set_tag("stopped_by", "time_limit")


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the best epoch's weights and stops after `patience` epochs without improvement.

    Unlike `keras.callbacks.EarlyStopping`, its state (best value, epoch, wait)
    lives in `directory/best.json` beside `directory/best.weights.h5`, so a
    resumed training picks up where the interrupted one stood.
    """

    def __init__(self, directory, monitor, mode="max", patience=5, min_delta=0.0):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.directory = Path(directory)
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.state = {"best": None, "best_epoch": None, "wait": 0}

    @property
    def weights_path(self):
        return self.directory / "best.weights.h5"

    @property
    def state_path(self):
        return self.directory / "best.json"

    def on_train_begin(self, logs=None):
        if self.state_path.exists():
            self.state = json.loads(self.state_path.read_text())

    def improved(self, value):
        best = self.state["best"]
        if best is None:
            return True
        if self.mode == "max":
            return value > best + self.min_delta
        return value < best - self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise ValueError(
                f"BestCheckpoint: the monitored metric {self.monitor!r} is missing or NaN at epoch "
                f"{epoch + 1}; logged metrics: {sorted(logs or {})}"
            )
        value = float(value)
        if self.improved(value):
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / "best.partial.weights.h5"
            self.model.save_weights(temporary)
            os.replace(temporary, self.weights_path)
            self.state.update(best=value, best_epoch=epoch, wait=0)
        else:
            self.state["wait"] += 1
            if self.state["wait"] >= self.patience:
                self.model.stop_training = True
        self.state_path.write_text(json.dumps(self.state))

    def restore(self, model):
        """Loads the best epoch's weights into `model` (no-op before any epoch)."""
        if self.weights_path.exists():
            model.load_weights(self.weights_path)


def _optimizer(model):
    optimizer = getattr(model, "optimizer", None)
    return getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer


def averages_weights(model):
    """Whether the model's optimizer keeps moving averages of the weights (`use_ema`)."""
    return bool(getattr(_optimizer(model), "use_ema", False))


def moving_averages(model):
    """(weight, its moving average) pairs of a built optimizer with `use_ema`, else []."""
    optimizer = _optimizer(model)
    if not averages_weights(model) or not optimizer.built:
        return []
    # The same private lists that keras.callbacks.SwapEMAWeights swaps.
    return list(zip(optimizer._trainable_variables, optimizer._model_variables_moving_average))


class AveragedWeights:
    """Puts the optimizer's moving averages of the weights (Polyak averaging) into the model
    for the epoch-end callbacks between `swap_in` and `swap_out`, then the trained weights back.

    Between the two, the app's validation metrics are computed and the best
    checkpoint is saved with the averaged weights. Outside them the model holds
    the weights being trained, so `BackupAndRestore` (placed after `swap_out`)
    saves weights and averages each in its own place, and a resumed training
    goes on from where it stood. Keras' own validation pass uses the averages
    through `keras.callbacks.SwapEMAWeights`.
    """

    def __init__(self):
        self.swap_in = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: self._swap())
        self.swap_out = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: self._swap())

    def callbacks(self, inner):
        """`swap_in`, the callbacks `inner`, `swap_out`; Keras' validation with the averages."""
        return [keras.callbacks.SwapEMAWeights(), self.swap_in, *inner, self.swap_out]

    def _swap(self):
        for weight, average in moving_averages(self.swap_in.model):
            trained = keras.ops.convert_to_numpy(weight)
            weight.assign(average)
            average.assign(trained)


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs every numeric entry of the epoch's logs to the active MLflow run, step = epoch."""

    def on_epoch_end(self, epoch, logs=None):
        metrics = {}
        for name, value in (logs or {}).items():
            try:
                metrics[name] = float(value)
            except (TypeError, ValueError):
                continue
        if metrics:
            mlflow.log_metrics(metrics, step=epoch)


class InterruptAtBatchEnd(keras.callbacks.Callback):
    """Ctrl-C (or `kill`'s SIGTERM) stops training at the end of the current batch; a second one at once.

    The first signal only records itself, and this callback raises
    KeyboardInterrupt after the batch, at a point where TensorFlow holds no
    half-built state: raised wherever the main thread happens to be (inside
    a data iterator's construction, say), it can leave native objects that
    crash the process as it exits, and inside a finalizer or a call back from
    TensorFlow's runtime it is printed and dropped. A second signal raises at
    once, for a user who will not wait for the batch. SIGTERM (a `kill`, a job
    scheduler's stop) is handled like Ctrl-C rather than ending the process on
    the spot, so the run is marked KILLED and can be resumed.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        super().__init__()
        self.interrupted = False
        self._previous = {}

    def _handler(self, signum, frame):
        if self.interrupted:
            self._restore()  # a third signal gets Python's own handling
            raise KeyboardInterrupt
        self.interrupted = True

    def on_train_begin(self, logs=None):
        self.interrupted = False
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}

    def _check(self, *_, **__):
        if self.interrupted:
            self._restore()
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_predict_batch_end = on_epoch_end = _check

    def _restore(self):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def on_train_end(self, logs=None):
        self._restore()


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: the model is lost, the run fails."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, raising `TrainingDiverged`.

    Keras' own `TerminateOnNaN` only stops quietly, after which a run would finish and log a
    NaN model; raising ends the run FAILED with a message, before any model is saved. The loss
    Keras reports is the epoch's running mean, which stays non-finite from the first such batch on.
    """

    def __init__(self, learning_rate, clipnorm):
        super().__init__()
        self.learning_rate, self.clipnorm = learning_rate, clipnorm
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        value = float(keras.ops.convert_to_numpy(loss))
        if not math.isfinite(value):
            clipping = (
                f"a smaller --clipnorm (this run: {self.clipnorm:g})"
                if self.clipnorm
                else "gradient clipping, e.g. --clipnorm 1 (this run: none)"
            )
            raise TrainingDiverged(
                f"the training loss became {value} at epoch {self.epoch + 1}, batch {batch + 1}: the model "
                f"diverged and no model was saved. Try a lower --learning-rate (this run: {self.learning_rate:g}) "
                f"or {clipping}."
            )
