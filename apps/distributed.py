"""Data-parallel training with tf.distribute: `train --distribute mirrored|multi-worker`.

    python -m apps.slot_filling train --distribute mirrored                      # the GPUs of this machine
    python -m apps.slot_filling train --distribute multi-worker \\
        --workers host1:2222,host2:2222 --worker-index 0                          # on host1 (the chief)
    python -m apps.slot_filling train --distribute multi-worker \\
        --workers host1:2222,host2:2222 --worker-index 1                          # on host2, same flags

`--batch-size` is each worker's batch; a step trains on the global batch, that times the workers,
split between all replicas (logged as `global_batch_size`). Every worker reads the whole data set
and keeps its share of each global batch (tf.data's DATA sharding).

Keras' `Model.fit` fails under MultiWorkerMirroredStrategy in this stack (keras-team/keras issue
20585: a PerReplica value converted to a tensor), so this path runs its own epoch loop around
Keras' own training step, `strategy.run(model.train_step, ...)` over
`experimental_distribute_dataset`; the optimizer all-reduces the gradients. What a single-process
training gives besides (validation metric per epoch, best checkpoint, early stopping, the rate
schedule, the time limit, MLflow logging, backup and resume) is the same Keras callbacks, run by
the chief on a *shadow* model: an undistributed copy that receives the trained weights and the
optimizer's state at each epoch's end. The chief's decisions (stop, learning rate) and, at the
start, its state (weights, optimizer, epoch: a new model's or its backup's) reach the other
workers through all-reduces, so every worker runs the same steps from the same state.

Only the chief (worker 0) tracks and writes: one MLflow run for the job, tagged `distribute`,
`workers` and `replicas`. The other workers log nothing and write nothing. A worker that stops
answering makes the others fail with `WorkerLost`; the chief's run is marked FAILED, and starting
the workers again (the chief with `--resume RUN_ID`, the others with their first command) resumes
from the chief's last backup.
"""

import argparse
import gc
import hashlib
import json
import os
import time

import numpy as np

from apps.app import UserError, WorkerLost

KINDS = ("none", "mirrored", "multi-worker")


def add_arguments(group):
    from apps.cli import non_negative_int

    group.add_argument(
        "--distribute",
        choices=KINDS,
        default="none",
        help="data-parallel training with tf.distribute: mirrored (the GPUs of this machine) or "
        "multi-worker (several processes or machines, see --workers) (default: %(default)s)",
    )
    group.add_argument(
        "--workers",
        metavar="HOST:PORT,...",
        help="with --distribute multi-worker: every worker's address, the chief's first; the same "
        "list on every worker (it becomes TF_CONFIG)",
    )
    group.add_argument(
        "--worker-index",
        type=non_negative_int,
        metavar="I",
        help="with --distribute multi-worker: this process's place in --workers (0: the chief, which tracks)",
    )


def checked_workers(args):
    """The --workers addresses, checked with --distribute and --worker-index; a UserError says what is wrong."""
    if args.distribute != "none":
        for flag, value in (("--cv", args.cv), ("--members", args.members > 1), ("--ema", args.ema)):
            if value:
                raise UserError(f"{flag} is not supported with --distribute yet: train without one or the other")
    if args.distribute != "multi-worker":
        if args.workers or args.worker_index is not None:
            raise UserError("--workers and --worker-index go with --distribute multi-worker")
        return []
    if not args.workers or args.worker_index is None:
        raise UserError(
            "--distribute multi-worker needs --workers HOST:PORT,HOST:PORT (every worker, the chief first) "
            "and --worker-index I (this worker's place in that list)"
        )
    workers = [w.strip() for w in args.workers.split(",") if w.strip()]
    for worker in workers:
        host, _, port = worker.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(f"--workers: {worker!r} is not HOST:PORT (e.g. 10.0.0.5:2222)")
    if len(set(workers)) != len(workers):
        raise UserError(f"--workers lists an address twice ({args.workers})")
    if not 0 <= args.worker_index < len(workers):
        raise UserError(
            f"--worker-index {args.worker_index}: --workers has {len(workers)} workers (0 to {len(workers) - 1})"
        )
    return workers


def make_strategy(args):
    """(strategy, workers, this worker's index) for --distribute. Called before any TensorFlow
    operation: a multi-worker strategy configures the runtime's collectives when it is created."""
    import tensorflow as tf

    workers = checked_workers(args)
    if args.distribute == "mirrored":
        return tf.distribute.MirroredStrategy(), 1, 0
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": args.worker_index}}
    )
    # No timeout on the collectives: a worker may wait for the chief's validation (minutes for a
    # generating app). A dead peer is found by the strategy's own health check (every 30 s),
    # which aborts the collectives. Creating the strategy waits until every worker is up.
    return tf.distribute.MultiWorkerMirroredStrategy(), len(workers), args.worker_index


def broadcast_from_chief(strategy, arrays, chief):
    """`arrays` (NumPy) as the chief has them, on every worker: an all-reduce to which only the
    chief's first replica contributes. Every worker must call it, with arrays of the same shapes."""
    import tensorflow as tf

    sent = [np.asarray(a, dtype="float64") * (1.0 if chief else 0.0) for a in arrays]

    def replica_function(*values):
        context = tf.distribute.get_replica_context()
        first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), "float64")
        return context.all_reduce("sum", [value * first for value in values])

    @tf.function  # not eagerly: TensorFlow warns that an eager collective is slow
    def broadcast(values):
        return strategy.run(replica_function, args=tuple(values))

    lost = None
    try:
        result = broadcast([tf.constant(a) for a in sent])
    except tf.errors.OpError as error:
        lost = lost_message(error)
    if lost is not None:
        raise_lost(lost)
    local = strategy.experimental_local_results(result)[0]
    return [np.asarray(value).astype(np.asarray(a).dtype) for value, a in zip(local, arrays)]


def lost_message(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # TensorFlow's message starts with where it happened; the cause (a peer "is down", "Socket
    # closed") is further down.
    cause = next((line for line in lines if "aborted" in line or "is down" in line), lines[-1] if lines else "")
    return (
        f"a worker stopped answering ({type(error).__name__}: {cause[:300]}). Start every worker again: "
        f"the chief with --resume RUN_ID (the run it printed), the others with their first command"
    )


def raise_lost(message):
    """Raises WorkerLost, once TensorFlow's error is released: its traceback holds the thread pool
    of an eager all-reduce, whose finalizer, run only at exit, would print a traceback of its own
    (its pipes already closed). Collected now, it closes quietly."""
    gc.collect()
    raise WorkerLost(message)


def fingerprint(model):
    """A number that differs between models of other shapes: workers started with other flags."""
    shapes = ";".join(f"{w.path}:{tuple(w.shape)}" for w in model.weights)
    return float(int(hashlib.sha256(shapes.encode()).hexdigest()[:12], 16))


def weights_digest(model):
    """A short hash of the weights' values: equal on workers that trained in step (printed)."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def state_of(model):
    """A compiled model's weights and optimizer variables, as NumPy arrays."""
    return [*model.get_weights(), *(np.asarray(v) for v in model.optimizer.variables)]


def set_state(model, arrays):
    """`state_of` arrays (of a model of the same build) into `model`."""
    count = len(model.weights)
    model.set_weights(arrays[:count])
    for variable, value in zip(model.optimizer.variables, arrays[count:]):
        variable.assign(value)


def sharded(dataset, replicas):
    """The training pipeline for `experimental_distribute_dataset`: DATA sharding (each worker
    keeps its share of every global batch) and no batch too small to give every replica a row."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    large = dataset.filter(lambda *batch: tf.shape(tf.nest.flatten(batch)[0])[0] >= replicas)
    return large.with_options(options)


def fit(app, model, shadow, data, args, strategy, workers, verbose, callbacks=(), after_logging=()):
    """The distributed epoch loop (see the module's docstring) of one of `workers` processes.
    `model` was built and compiled in the strategy's scope; `shadow` (the chief's; None on the
    other workers) outside it, for the callbacks."""
    import keras
    import tensorflow as tf

    from apps.callbacks import InterruptAtBatchEnd
    from apps.training_loop import training_callbacks

    chief = shadow is not None
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    if chief:
        shadow.optimizer.build(shadow.trainable_variables)
        objects = training_callbacks(app, shadow, data, args, callbacks, after_logging)
    else:
        objects = [InterruptAtBatchEnd()]
    watched = shadow if chief else model
    callback_list = keras.callbacks.CallbackList(
        objects, add_history=True, add_progbar=bool(verbose) and chief, model=watched, verbose=verbose,
        epochs=args.epochs, steps=None,
    )  # fmt: skip
    dataset = strategy.experimental_distribute_dataset(
        sharded(app.fit_dataset(data, "train"), strategy.num_replicas_in_sync)
    )

    def replica_step(batch):
        examples = tf.shape(tf.nest.flatten(batch)[0])[0]
        return model.train_step(batch)["loss"], examples

    @tf.function
    def step(iterator):
        # The next batch is taken inside the graph: iterated from Python, a distributed dataset
        # checks for more data with an eager all-reduce on every step (slower, and its thread
        # pool is left behind when a peer dies).
        batch = iterator.get_next_as_optional()
        if batch.has_value():
            loss, examples = strategy.run(replica_step, args=(batch.get_value(),))
            return True, strategy.reduce("MEAN", loss, axis=None), strategy.reduce("SUM", examples, axis=None)
        return False, tf.constant(0.0), tf.constant(0)

    try:
        callback_list.on_train_begin()  # the chief's backup, if any, is restored into the shadow here
        # The chief's state (a new model's, or its backup's: weights, optimizer, next epoch) on
        # every worker. Every worker runs the same assignments, so none waits on another.
        state = state_of(watched)
        initial = [float(getattr(shadow, "_initial_epoch", None) or 0) if chief else 0.0]
        if workers > 1:
            (chief_print,) = broadcast_from_chief(strategy, [np.array(fingerprint(model))], chief)
            if float(chief_print) != fingerprint(model):
                raise UserError(
                    "this worker built another model than the chief: start every worker with the same flags"
                )
            *state, initial = broadcast_from_chief(strategy, [*state, np.array(initial)], chief)
        set_state(model, state)
        logs = {}
        for epoch in range(int(initial[0]), args.epochs):
            model.reset_metrics()
            callback_list.on_epoch_begin(epoch)
            losses, examples, started = [], 0, time.perf_counter()
            iterator, index = iter(dataset), 0
            while True:
                callback_list.on_train_batch_begin(index)
                more, loss, count = step(iterator)
                if not more:
                    break
                losses.append(float(loss))
                examples += int(count)
                callback_list.on_train_batch_end(index, {"loss": losses[-1]})
                index += 1
            # Every worker's examples per second of training (evaluation apart): the job's speed.
            speed = examples / (time.perf_counter() - started)
            logs = {"loss": float(np.mean(losses)) if losses else float("nan"), "train_examples_per_s": speed}
            if chief:
                set_state(shadow, state_of(model))
                logs["val_loss"] = shadow.evaluate(app.fit_dataset(data, "valid"), verbose=0, return_dict=True)["loss"]
            callback_list.on_epoch_end(epoch, logs)
            rate = float(keras.ops.convert_to_numpy(watched.optimizer.learning_rate))
            decision = [np.array([float(watched.stop_training), rate])]
            stop, rate = broadcast_from_chief(strategy, decision, chief)[0] if workers > 1 else decision[0]
            model.optimizer.learning_rate = rate
            if stop:
                break
        callback_list.on_train_end(logs)
    except tf.errors.OpError as error:
        lost = lost_message(error)
    else:
        lost = None
    finally:
        objects[0].on_train_end()  # the interrupt handler
    if lost is not None:
        raise_lost(lost)


def train(app, args):
    """`train --distribute ...` (with a resumed run's arguments already restored): one model,
    trained by every worker; the chief tracks it as `apps.training` tracks any training."""
    from apps import training
    from apps.finishing import run_name
    from apps.training_loop import compile_model

    strategy, workers, index = make_strategy(args)
    chief = index == 0
    resuming = bool(args.resume)
    if resuming and not chief:
        raise UserError(
            "--resume goes to the chief (--worker-index 0); start the other workers with their first command"
        )
    verbose = training.start_session(args, resuming, tracks=chief)
    # Each step reads a global batch: every worker's batch together.
    data = app.load_data(argparse.Namespace(**{**vars(args), "batch_size": args.batch_size * workers}))
    args.fold = None
    replicas = strategy.num_replicas_in_sync
    print(f"worker {index} of {workers} ({'chief' if chief else 'worker'}), {replicas} replicas in sync; "
          f"global batch {args.batch_size * workers}", flush=True)  # fmt: skip
    with strategy.scope():
        model = app.build_model(args, data)
        compile_model(app, model, args, data)

    def train_and_report(shadow=None, callbacks=(), after_logging=()):
        fit(app, model, shadow, data, args, strategy, workers, verbose, callbacks, after_logging)
        print(f"worker {index}: training done, weights {weights_digest(model)}"
              + ("" if chief else " (the chief logs the run)"), flush=True)  # fmt: skip

    if not chief:
        return train_and_report()
    with training.tracked_run(app, args, args.resume, args.run_name or run_name(args)) as (run_id, checkpoint):
        training.train_in_run(
            app, args, run_id, checkpoint, resuming, verbose, data, fit=train_and_report,
            extra_tags={"distribute": args.distribute, "workers": workers, "replicas": replicas},
            extra_params={"global_batch_size": args.batch_size * workers},
        )  # fmt: skip
    return run_id
