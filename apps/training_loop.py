"""The training loop every app shares: compiling, `Model.fit` with the shared callbacks.

Used by a training run (`apps.training`) and by each tuning trial (`apps.tuning`).
"""

import keras
import mlflow

from apps.callbacks import (
    AveragedWeights,
    EpochEvaluation,
    InterruptAtBatchEnd,
    MlflowEpochLogger,
    StopOnNonFiniteLoss,
    TimeLimit,
    averages_weights,
)


def evaluate(app, model, data, split):
    """The app's metrics on `split` of the model it evaluates (`App.evaluation_model`)."""
    return app.evaluate(app.evaluation_model(model, data), data, split)


def xla_choice(cell, xla=None):
    """(whether to compile with XLA, why): `xla` when given, else the fast path of `cell`.

    Keras' own cells keep their own path (cuDNN on a GPU). The custom cells already
    take their input projection out of the time loop (layers.base.CellLayer); XLA
    also fuses each step's small operations, which pays on a GPU. On a CPU, with the
    apps' bucketed batches, compiling every batch shape cost more than it saved
    (measured: benchmarks and docs/performance.md).
    """
    if xla is not None:
        return bool(xla), "asked (--xla)" if xla else "asked (--no-xla)"
    from layers import CUSTOM_KINDS

    on_gpu = bool(tf_gpus())
    if cell in CUSTOM_KINDS and on_gpu:
        return True, "default: custom cell on a GPU"
    if cell in CUSTOM_KINDS:
        return False, "default: custom cell on a CPU (compilation costs more than it saves)"
    return False, "default: Keras' built-in cell keeps its own path"


def tf_gpus():
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def compile_model(app, model, args, data):
    """Adam with gradient clipping (and weight averaging with --ema), XLA by `xla_choice`
    (tagged on the active run), and the app's losses."""
    ema = args.ema
    optimizer = keras.optimizers.Adam(
        learning_rate=args.learning_rate,
        clipnorm=args.clipnorm if args.clipnorm > 0 else None,
        use_ema=ema > 0,
        ema_momentum=ema if ema > 0 else 0.99,
    )
    jit_compile, reason = xla_choice(args.cell, args.xla)
    if mlflow.active_run():
        mlflow.set_tags({"jit_compile": "on" if jit_compile else "off", "jit_compile_reason": reason})
    model.compile(optimizer=optimizer, jit_compile=jit_compile, **app.compile_arguments(args, data, model))


def rate_schedule(app, args):
    """--reduce-lr: ReduceLROnPlateau on the app's validation metric (after EpochEvaluation has logged it)."""
    patience = args.reduce_lr
    if not patience:
        return []
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor=app.monitor, mode=app.monitor_mode, factor=0.5, patience=patience, min_lr=args.learning_rate / 64
        )
    ]


def training_callbacks(app, model, data, args, callbacks=(), after_logging=()):
    """The shared callbacks, in order: Ctrl-C at batch end, a NaN or infinite loss (the run
    fails), the app's validation metrics (so later callbacks see them), `callbacks`, the
    --reduce-lr schedule, MLflow logging, `after_logging`, the --time-limit. With --ema, the
    validation metrics, `callbacks` and the schedule see the averaged weights. The first is the
    interrupt handler, which the caller ends when training raises (Keras skips `on_train_end`)."""
    interrupt = InterruptAtBatchEnd()
    evaluated = [EpochEvaluation(lambda m: evaluate(app, m, data, "valid")), *callbacks, *rate_schedule(app, args)]
    if averages_weights(model):  # --ema: evaluate and keep the averaged weights
        evaluated = AveragedWeights().callbacks(evaluated)
    diverged = StopOnNonFiniteLoss(args.learning_rate, args.clipnorm)
    limit = [TimeLimit(args.time_limit)] if getattr(args, "time_limit", 0) else []
    return [interrupt, diverged, *evaluated, MlflowEpochLogger(), *after_logging, *limit]


def fit_model(app, model, data, args, epochs, verbose, callbacks=(), after_logging=(), initial_epoch=0):
    """`model.fit` on the app's pipelines with the shared callbacks (`training_callbacks`), for
    training runs and tuning trials."""
    callbacks = training_callbacks(app, model, data, args, callbacks, after_logging)
    try:
        return model.fit(
            app.fit_dataset(data, "train"),
            validation_data=app.fit_dataset(data, "valid"),
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the app's pipeline shuffles
        )
    finally:
        callbacks[0].on_train_end()  # the interrupt handler: Keras skips it when fit raises
