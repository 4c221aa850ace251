"""Training runs: one model, K folds (`--cv`) or an ensemble (`--members`), each tracked in MLflow.

Each `train` is one MLflow run: every CLI parameter as a param, per-epoch
metrics, final test metrics, tags (app, dataset, cell, device, library
versions, git commit), a learning-curve plot, the app's reports, and the model
logged as an MLflow pyfunc model that predicts (and serves) from raw input
(`apps.finishing`, `apps.serving`). Checkpoints go to `--checkpoint-dir/RUN_ID`; an interrupted
or failed training continues with `train --resume RUN_ID`.
"""

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import keras
import mlflow
import numpy as np

from apps import run_owners, tracking
from apps.app import COMMON_LEGACY_ARGUMENTS, UserError
from apps.callbacks import BestCheckpoint
from apps.finishing import curve_keys, finish_model, run_name
from apps.training_loop import compile_model, evaluate, fit_model
from pipelines.sources import DATA_ENV, ChecksumError, DataFormatError, DataNotFoundError

# Resuming a run replays its saved arguments; these may differ in the new session.
# Errors that resuming the run would meet again: no "--resume" hint for them.
NOT_RESUMABLE = (UserError, DataFormatError, DataNotFoundError, ChecksumError)
RESUME_OVERRIDES = ("resume", "tracking_uri", "checkpoint_dir", "verbose", "data_dir", "workers", "worker_index")


def saved_arguments(app, saved, overrides=None):
    """The arguments of a run from its saved `args.json` (`saved`, a dict), migrated: a flag
    renamed since is read under its new name (`App.renamed_arguments`), a flag added since the
    run was saved gets the value that meant what the run did (`App.legacy_arguments`), and
    `overrides` win."""
    saved = {app.renamed_arguments.get(name, name): value for name, value in saved.items()}
    migrated = {**COMMON_LEGACY_ARGUMENTS, **app.legacy_arguments, **saved}
    return argparse.Namespace(**{**migrated, **(overrides or {})})


def restore_arguments(app, args):
    """For --resume: the interrupted run's own arguments, with this session's overrides."""
    saved_path = Path(args.checkpoint_dir) / args.resume / "args.json"
    if not saved_path.exists():
        raise UserError(
            f"--resume {args.resume}: no checkpoint at {saved_path}. Pass the run id printed when "
            f"the training stopped, and the same --checkpoint-dir."
        )
    saved = json.loads(saved_path.read_text())
    overrides = {name: getattr(args, name) for name in RESUME_OVERRIDES}
    return saved_arguments(app, saved, {k: v for k, v in overrides.items() if v is not None})


def check_resumable(run_id):
    """Refuses to resume a finished run, or one that a live process still trains."""
    run = mlflow.get_run(run_id)
    if run.info.status == "FINISHED":
        raise UserError(f"run {run_id} has already finished; nothing to resume")
    refusal = run_owners.refuse_if_owned(run)
    if refusal:
        raise UserError(refusal)


def start_session(args, resuming, tracks=True):
    """What a training process does before it reads its data: the store checked (and a resumed
    run with it) when it `tracks`, the seed, the precision policy; returns Keras' verbosity."""
    if tracks:
        tracking.configure(args.tracking_uri, args.experiment)
        if resuming:
            check_resumable(args.resume)
    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy("mixed_float16" if args.mixed_precision else "float32")
    tracking.forget_unlogged_skips()
    return args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)


def train(app, args):
    """Trains one model (one MLflow run) or, with --cv K, K models (a parent run, K child runs);
    with --distribute, one model on several replicas or workers (`apps.distributed`)."""
    resuming = bool(args.resume)
    if resuming:
        args = restore_arguments(app, args)
    if args.distribute != "none":
        from apps import distributed

        return distributed.train(app, args)
    verbose = start_session(args, resuming)
    # The data is read before any run exists: a bad file or data set ends with its error, not
    # with a FAILED run (that --resume would only fail on again). Cross-validation reads fold 0.
    data = app.load_data(argparse.Namespace(**{**vars(args), "fold": 0}) if args.cv else args)
    if args.cv:
        return _cross_validate(app, args, resuming, verbose, data)
    if args.members > 1:
        return _ensemble(app, args, resuming, verbose, data)
    args.fold = None
    name = args.run_name or run_name(args)
    with tracked_run(app, args, args.resume, name) as (run_id, checkpoint):
        train_in_run(app, args, run_id, checkpoint, resuming, verbose, data)
    return run_id


@contextlib.contextmanager
def tracked_run(app, args, run_id, name, nested=False, resume_id=None):
    """An MLflow run that ends FAILED (KILLED on Ctrl-C) on an exception, saying how to resume.

    Yields (run id, checkpoint folder). `resume_id` is the run to name in the
    resume hint (the parent of a cross-validation).
    """
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else name, nested=nested) as run:
        run_id = run.info.run_id
        checkpoint = Path(args.checkpoint_dir) / run_id
        print(f"MLflow run {run_id} ({name}) in {mlflow.get_tracking_uri()}", flush=True)
        mlflow.set_tags(run_owners.owner_tags())  # this process trains it now (a resumed run: again)
        tracking.log_unlogged_skips()
        try:
            yield run_id, checkpoint
        except BaseException as error:
            status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            if status == "FAILED":
                mlflow.set_tag("error", f"{type(error).__name__}: {error}"[:5000])
            mlflow.end_run(status=status)
            if isinstance(error, NOT_RESUMABLE):
                # The cause (a diverged loss, a bad file) would stop a resumed run again: main says it.
                if not nested:
                    print(f"\nrun {run_id} is marked FAILED", file=sys.stderr)
            elif not nested:
                print(
                    f"\ntraining stopped ({type(error).__name__}); run {run_id} is marked {status}.\n"
                    f"Its checkpoints are in {Path(args.checkpoint_dir)}. Continue it with:\n"
                    f"  python -m apps.{app.name} train --resume {resume_id or run_id}"
                    + (f" --checkpoint-dir {args.checkpoint_dir}" if args.checkpoint_dir != "checkpoints" else "")
                    + (f" --tracking-uri {args.tracking_uri}" if args.tracking_uri else ""),
                    file=sys.stderr,
                )
            raise


def _child_runs(app, args, parent_id, name, tag, children, verbose, first_data=None):
    """Trains each of `children` ([(arguments, random seed)]) in a child run of `parent_id`,
    tagged `tag` = its index and named after the tag's last word (RUN_NAME-fold0 for cv_fold);
    children that finished in an earlier session (a resumed parent) are not trained again.
    `first_data` is the first child's data when already read. Returns [(child run id, its final
    metrics)] in order."""
    existing = {}
    for child in mlflow.search_runs(
        experiment_ids=[mlflow.get_run(parent_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        output_format="list",
    ):
        if tag in child.data.tags:
            existing[int(child.data.tags[tag])] = child
    word = tag.rsplit("_", 1)[-1]  # cv_fold -> fold
    results = []
    for index, (child_args, seed) in enumerate(children):
        label = f"{word} {index + 1}/{len(children)}"
        child = existing.get(index)
        if child is not None and child.info.status == "FINISHED":
            print(f"{label}: finished earlier, run {child.info.run_id}")
            results.append((child.info.run_id, child.data.metrics))
            continue
        keras.utils.set_random_seed(seed)
        print(f"\n{label}", flush=True)
        child_id = child.info.run_id if child is not None else None
        with tracked_run(app, child_args, child_id, f"{name}-{word}{index}", nested=True, resume_id=parent_id) as (
            run_id,
            child_checkpoint,
        ):
            if child_id is None:
                mlflow.set_tag(tag, index)
            results.append(
                (
                    run_id,
                    train_in_run(
                        app,
                        child_args,
                        run_id,
                        child_checkpoint,
                        child_id is not None,
                        verbose,
                        first_data if index == 0 else None,
                    ),
                )  # fmt: skip
            )
    return results


def _cross_validate(app, args, resuming, verbose, first_data):
    """K folds, each a child run; the parent logs cv_<metric> (mean) and cv_<metric>_std."""
    name = args.run_name or f"{run_name(args)}-cv{args.cv}"
    with tracked_run(app, args, args.resume, name) as (parent_id, checkpoint):
        if not resuming:
            log_run_start(app, args, checkpoint, extra_tags={"cv_folds": args.cv})
        folds = [(argparse.Namespace(**{**vars(args), "fold": fold}), args.seed + fold) for fold in range(args.cv)]
        results = [
            metrics for _, metrics in _child_runs(app, args, parent_id, name, "cv_fold", folds, verbose, first_data)
        ]
        summary = {}
        for key in sorted(results[0]):
            if key.startswith("test_"):
                values = [r[key] for r in results]
                summary[f"cv_{key[5:]}"] = float(np.mean(values))
                summary[f"cv_{key[5:]}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        mlflow.log_metrics(summary)
        print(
            f"\n{args.cv}-fold cross-validation, run {parent_id}: "
            + "  ".join(f"{k} {v:.4f}" for k, v in summary.items())
        )
    return parent_id


def _ensemble(app, args, resuming, verbose, data):
    """--members N: N models, each a child run (member i with seed SEED*N+i), combined by the
    app into one model, which the parent run validates, tests, reports on and logs like a
    single training's; it also logs the members' mean test metrics (members_test_<metric>)."""
    count = args.members
    name = args.run_name or f"{run_name(args)}-members{count}"
    with tracked_run(app, args, args.resume, name) as (parent_id, checkpoint):
        if not resuming:
            log_run_start(app, args, checkpoint, extra_tags={"ensemble_members": count})
        members_args = [
            argparse.Namespace(**{**vars(args), "seed": args.seed * count + i, "members": 1}) for i in range(count)
        ]  # fmt: skip
        children = _child_runs(
            app, args, parent_id, name, "ensemble_member", [(a, a.seed) for a in members_args], verbose
        )  # fmt: skip
        print(f"\nensemble of {count} members, run {parent_id}", flush=True)
        started = time.perf_counter()
        members = []
        for index, ((child_id, _), member_args) in enumerate(zip(children, members_args)):
            weights = BestCheckpoint(Path(args.checkpoint_dir) / child_id, app.monitor).weights_path
            if not weights.exists():
                raise UserError(
                    f"member {index} (run {child_id}): its best weights {weights} are missing; "
                    f"pass the --checkpoint-dir it was trained with"
                )
            member = app.build_model(member_args, data)
            member.load_weights(weights)
            member.name = f"{member.name}_{index}"  # unique names inside the combined model
            members.append(member)
        model = app.average_members(members, data)
        # Before the app's last step (e.g. a ranking fitted on the validation split) reads it.
        validation = evaluate(app, model, data, "valid")
        final = {"members": count}
        for name in validation:  # the model's own metrics (not the baseline's): the members' mean
            values = [metrics[f"test_{name}"] for _, metrics in children if f"test_{name}" in metrics]
            if values:
                final[f"members_test_{name}"] = float(np.mean(values))
        final["members_train_seconds"] = float(sum(metrics.get("train_seconds", 0.0) for _, metrics in children))
        final.update({f"val_{k}": v for k, v in validation.items()})
        curves = {}  # the members' learning curves, side by side
        for index, (child_id, _) in enumerate(children):
            history = tracking.metric_history(child_id, curve_keys(app)[:3])
            curves.update({f"member {index} {key}": points for key, points in history.items()})
        finish_model(app, args, model, data, checkpoint, curves, final, started)
    return parent_id


def log_run_start(app, args, checkpoint, extra_tags=None, extra_params=None):
    """Params, tags and the saved arguments (for --resume) of a new run."""
    checkpoint.mkdir(parents=True, exist_ok=True)
    saved = {k: v for k, v in vars(args).items() if k != "command"}
    # Where the data came from, so that --resume finds it from any shell.
    saved["data_dir"] = args.data_dir or os.environ.get(DATA_ENV)
    (checkpoint / "args.json").write_text(json.dumps(saved, indent=1))
    mlflow.log_params({k: ("" if v is None else v) for k, v in saved.items()})
    mlflow.log_params({"dtype_policy": keras.mixed_precision.dtype_policy().name, **(extra_params or {})})
    mlflow.set_tags({**tracking.run_tags(app.name, args.dataset, args.cell), **(extra_tags or {})})


def train_in_run(app, args, run_id, checkpoint, resuming, verbose, data=None, fit=None, extra_tags=None,
                 extra_params=None):  # fmt: skip
    """Trains, evaluates and logs one model in the active run (on `data`, else the data it
    reads); returns its final metrics. `fit(model, callbacks, after_logging)` trains the model
    with the runner's checkpoint callbacks (default: `fit_model`; `apps.distributed` passes its
    own loop); `extra_tags` and `extra_params` go to a new run."""
    checkpoint.mkdir(parents=True, exist_ok=True)
    if not resuming:
        log_run_start(app, args, checkpoint, extra_tags, extra_params)

    started = time.perf_counter()
    data = data if data is not None else app.load_data(args)
    model = app.build_model(args, data)
    backup_folder = checkpoint / "backup"
    if not backup_folder.exists():  # else BackupAndRestore loads the interrupted training's weights
        app.start_weights(model, args, data)
    compile_model(app, model, args, data)
    if verbose:
        model.summary(print_fn=lambda line, **_: print(line))

    best = BestCheckpoint(checkpoint, app.monitor, mode=app.monitor_mode, patience=args.patience)
    backup = keras.callbacks.BackupAndRestore(str(backup_folder))
    if fit is None:
        fit_model(app, model, data, args, args.epochs, verbose, callbacks=[best], after_logging=[backup])
    else:
        fit(model, [best], [backup])
    best.restore(model)
    final = {f"best_{app.monitor}": best.state["best"], "best_epoch": best.state["best_epoch"] + 1}
    history = tracking.metric_history(run_id, curve_keys(app))
    return finish_model(app, args, model, data, checkpoint, history, final, started)
