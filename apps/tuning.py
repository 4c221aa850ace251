"""Hyperparameter tuning for every app: keras-tuner search, each trial an MLflow child run.

    python -m apps.APP tune --tuner bayesian --max-trials 20 --epochs 10
    python -m apps.APP tune --search-space space.yaml --resume
    python -m apps.APP tune --distributed chief  --oracle 10.0.0.1:8000   # on one machine
    python -m apps.APP tune --distributed worker --oracle 10.0.0.1:8000   # on each of the others

The job is one MLflow parent run (tag `tuning_job`); every trial is a run
tagged `mlflow.parentRunId` with the parent's id, which works across
processes and machines where nested runs do not. A trial's run holds its
hyperparameters, per-epoch metrics and final status (a failing trial is
FAILED and the job goes on). The parent logs the best hyperparameters
(`best.*` tags), the best trial's metrics (`best_*`), the best model, and a
plot of the objective per trial by cell kind. The best hyperparameters are
tags (`best.*`) and `best_hyperparameters.json`: a resumed job may change them.

Search spaces: a dict of train-flag name -> one of
    {"choice": [...]}, {"int": [low, high], "step": s}, {"float": [low, high], "sampling": "log"},
    {"boolean": true}, {"fixed": value}
Each app has a default; `--search-space FILE` (YAML or JSON) replaces it.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import keras
import keras_tuner
import mlflow
import yaml

from apps import run_owners, tracking
from apps.app import UserError
from apps.finishing import curve_keys, finish_model
from apps.training_loop import compile_model, fit_model

TUNERS = ("random", "bayesian", "hyperband")
PARENT_FILE = "mlflow_parent.json"


class SearchSpaceError(ValueError):
    """A search space that names an unknown hyperparameter or has a malformed entry."""


def load_search_space(path, allowed):
    """Reads a YAML or JSON search space; every name must be one of `allowed` (train flags)."""
    path = Path(path)
    if not path.is_file():
        raise SearchSpaceError(f"--search-space {path}: no such file")
    try:
        space = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except yaml.YAMLError as error:
        raise SearchSpaceError(f"{path}: not valid YAML or JSON ({error})") from None
    if not isinstance(space, dict) or not space:
        raise SearchSpaceError(f"{path}: expected a mapping of hyperparameter name -> range")
    return check_space(space, allowed, str(path))


def check_space(space, allowed, where="search space"):
    for name, spec in space.items():
        if name not in allowed:
            raise SearchSpaceError(
                f"{where}: unknown hyperparameter {name!r}; tunable are the train flags: {', '.join(sorted(allowed))}"
            )
        kinds = {"choice", "int", "float", "boolean", "fixed"} & set(spec if isinstance(spec, dict) else ())
        if len(kinds) != 1:
            raise SearchSpaceError(
                f"{where}: {name}: give exactly one of choice, int, float, boolean, fixed; got {spec!r}"
            )
    return space


def sample(hp, name, spec):
    """The keras-tuner hyperparameter for one search-space entry."""
    if "choice" in spec:
        return hp.Choice(name, spec["choice"])
    if "int" in spec:
        low, high = spec["int"]
        return hp.Int(name, low, high, step=spec.get("step", 1))
    if "float" in spec:
        low, high = spec["float"]
        return hp.Float(name, low, high, step=spec.get("step"), sampling=spec.get("sampling", "linear"))
    if "boolean" in spec:
        return hp.Boolean(name)
    return hp.Fixed(name, spec["fixed"])


class AppHyperModel(keras_tuner.HyperModel):
    """An app's model under a trial's hyperparameters, trained by the app's own pipeline."""

    def __init__(self, app, args, space, verbose):
        super().__init__(name=app.name)
        self.app, self.args, self.space, self.verbose = app, args, space, verbose
        self._data = {}

    def trial_args(self, hp):
        values = {name: sample(hp, name, spec) for name, spec in self.space.items()}
        return argparse.Namespace(**{**vars(self.args), **values})

    def data(self, args):
        """The app's data for these arguments; loaded once per distinct data setting."""
        key = tuple((name, getattr(args, name, None)) for name in self.app.data_arguments)
        if key not in self._data:
            self._data[key] = self.app.load_data(args)
        return self._data[key]

    def build(self, hp):
        args = self.trial_args(hp)
        model = self.app.build_model(args, self.data(args))
        self.app.start_weights(model, args, self.data(args))
        compile_model(self.app, model, args, self.data(args))
        return model

    def fit(self, hp, model, *fit_args, callbacks=(), epochs=1, initial_epoch=0, **fit_kwargs):
        args = self.trial_args(hp)
        return fit_model(
            self.app,
            model,
            self.data(args),
            args,
            epochs,
            self.verbose,
            callbacks=callbacks,
            initial_epoch=initial_epoch,
        )


class TrackedTrials:
    """Mixed into a keras-tuner tuner: each trial is an MLflow run under the job's parent run."""

    def __init__(self, *args, parent_run_id, experiment_id, **kwargs):
        self.parent_run_id = parent_run_id
        self.experiment_id = experiment_id
        super().__init__(*args, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        tags = {
            "mlflow.parentRunId": self.parent_run_id,
            "trial_id": trial.trial_id,
            "tuner_id": self.tuner_id,
            **run_owners.owner_tags(),
        }
        with mlflow.start_run(experiment_id=self.experiment_id, run_name=f"trial-{trial.trial_id}", tags=tags):
            mlflow.log_params({k: v for k, v in trial.hyperparameters.values.items()})
            try:
                results = super().run_trial(trial, *args, **kwargs)
            except Exception as error:
                mlflow.set_tag("error", f"{type(error).__name__}: {error}"[:5000])
                mlflow.end_run(status="FAILED")
                print(f"trial {trial.trial_id} failed: {type(error).__name__}: {error}", file=sys.stderr)
                raise keras_tuner.errors.FailedTrialError(f"{type(error).__name__}: {error}") from error
            objective = self.oracle.objective
            best = tracked_best(results, objective)
            if best is not None:
                mlflow.log_metric(f"best_{objective.name}", best)
        return results


def tracked_best(results, objective):
    """The best objective value over the epochs of a trial's histories."""
    values = []
    for history in results if isinstance(results, list) else [results]:
        if hasattr(history, "history") and objective.name in history.history:
            values.extend(history.history[objective.name])
    if not values:
        return None
    return max(values) if objective.direction == "max" else min(values)


def tuner_class(name):
    base = {
        "random": keras_tuner.RandomSearch,
        "bayesian": keras_tuner.BayesianOptimization,
        "hyperband": keras_tuner.Hyperband,
    }[name]
    return type(f"Tracked{base.__name__}", (TrackedTrials, base), {})


def configure_distribution(args):
    """keras-tuner reads its role from KERASTUNER_* variables: set them from the flags."""
    if not args.distributed:
        for variable in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
            os.environ.pop(variable, None)
        return
    if not args.oracle or ":" not in args.oracle:
        raise SearchSpaceError("--distributed needs --oracle HOST:PORT (the chief's address)")
    host, port = args.oracle.rsplit(":", 1)
    os.environ["KERASTUNER_ORACLE_IP"] = host
    os.environ["KERASTUNER_ORACLE_PORT"] = port
    os.environ["KERASTUNER_TUNER_ID"] = (
        "chief" if args.distributed == "chief" else f"worker-{args.worker_id or os.getpid()}"
    )


def find_parent(experiment_id, job, wait_seconds):
    """A worker's view of the chief's parent run: found by its `tuning_job` tag."""
    deadline = time.time() + wait_seconds
    while True:
        runs = mlflow.search_runs(
            experiment_ids=[experiment_id],
            filter_string=f"tags.tuning_job = '{job}' and attributes.status = 'RUNNING'",
            output_format="list",
        )
        if runs:
            return runs[0].info.run_id
        if time.time() > deadline:
            raise SearchSpaceError(
                f"no running tuning job {job!r} in the MLflow store after {wait_seconds} s: "
                f"start the chief first, with the same --project and --tracking-uri"
            )
        time.sleep(1)


def trial_history(parent_id, experiment_id, trial_id, app):
    """The per-epoch metrics of a trial's MLflow run, for its learning curve."""
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and tags.trial_id = '{trial_id}'",
        output_format="list",
    )
    return tracking.metric_history(runs[0].info.run_id, curve_keys(app)) if runs else {}


def comparison_figure(trials, objective):
    """The objective of each finished trial, one colour per cell kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4))
    kinds = sorted({str(t.hyperparameters.values.get("cell", "all")) for t in trials})
    for kind in kinds:
        points = [
            (int(t.trial_id), t.score)
            for t in trials
            if str(t.hyperparameters.values.get("cell", "all")) == kind and t.score is not None
        ]
        if points:
            axis.scatter(*zip(*points), label=kind, s=40)
    axis.set(xlabel="trial", ylabel=objective.name, title=f"{objective.name} per trial, by cell kind")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def tune(app, args):
    allowed = set(vars(args)) - {"command", "fold", "cv"}
    try:
        space = (
            load_search_space(args.search_space, allowed)
            if args.search_space
            else check_space(app.search_space, allowed, f"{app.name}'s default search space")
        )
        configure_distribution(args)
    except SearchSpaceError as error:
        raise UserError(str(error)) from None

    tracking.configure(args.tracking_uri, args.experiment)
    experiment_id = mlflow.get_experiment_by_name(args.experiment).experiment_id
    keras.utils.set_random_seed(args.seed)
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
    kind, _, location = args.dataset.partition(":")
    dataset_name = f"{kind}-{Path(location).stem}" if location else kind
    project = args.project or f"{dataset_name}-{args.tuner}"
    folder = Path(args.tuner_dir) / app.name / project
    job = f"{app.name}/{project}"
    role = args.distributed or "single"

    hypermodel = AppHyperModel(app, args, space, verbose)
    tracking.forget_unlogged_skips()
    hypermodel.data(args)  # read before the job's run exists: a bad data set fails here, plainly

    if role == "worker":
        parent_id = find_parent(experiment_id, job, args.wait_for_chief)
    else:
        parent_file = folder / PARENT_FILE
        if folder.exists() and not args.resume:
            raise UserError(
                f"a tuning job already lives in {folder}: continue it with --resume, or name a new one "
                f"with --project NAME"
            )
        if args.resume and parent_file.exists():
            parent_id = json.loads(parent_file.read_text())["run_id"]
            mlflow.MlflowClient().update_run(parent_id, status="RUNNING")
            mlflow.MlflowClient().set_tag(parent_id, run_owners.OWNER_TAG, run_owners.this_process())
        else:
            folder.mkdir(parents=True, exist_ok=True)
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"tune-{project}") as parent:
                parent_id = parent.info.run_id
                tracking.log_unlogged_skips()
                mlflow.set_tags({
                    **tracking.run_tags(app.name, args.dataset, "tuned"), **run_owners.owner_tags(), "tuning_job": job,
                })  # fmt: skip
                mlflow.log_params({
                    "tuner": args.tuner, "max_trials": args.max_trials, "epochs": args.epochs,
                    "search_space": json.dumps(space), "dataset": args.dataset, "distributed": role,
                })  # fmt: skip
            mlflow.MlflowClient().update_run(parent_id, status="RUNNING")
            parent_file.write_text(json.dumps({"run_id": parent_id}))
    print(f"tuning job {job}: parent MLflow run {parent_id} ({role})", flush=True)

    objective = keras_tuner.Objective(app.monitor, direction=app.monitor_mode)
    options = dict(
        hypermodel=hypermodel,
        objective=objective,
        directory=str(Path(args.tuner_dir) / app.name),
        project_name=project,
        overwrite=False,
        seed=args.seed,
        parent_run_id=parent_id,
        experiment_id=experiment_id,
        max_consecutive_failed_trials=args.max_failed_trials,
    )
    if args.tuner == "hyperband":
        options["max_epochs"] = args.epochs
    else:
        options["max_trials"] = args.max_trials
    tuner = tuner_class(args.tuner)(**options)

    try:
        tuner.search(epochs=args.epochs, verbose=verbose)
    except BaseException as error:
        if role != "worker":
            status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            mlflow.MlflowClient().set_terminated(parent_id, status=status)
            print(
                f"\ntuning stopped ({type(error).__name__}); continue with the same command and --resume",
                file=sys.stderr,
            )
        raise
    if role == "worker":
        print(f"worker {os.environ.get('KERASTUNER_TUNER_ID')}: no more trials", flush=True)
        return parent_id
    summarize(app, args, tuner, parent_id, experiment_id, folder)
    return parent_id


def summarize(app, args, tuner, parent_id, experiment_id, folder):
    """Logs the best hyperparameters, the trial plot and the best trial's model, finished as
    `train` finishes one (`apps.finishing`: its metrics `best_*`, saved in FOLDER/best), to the
    parent run."""
    oracle = tuner.oracle
    trials = [t for t in oracle.trials.values() if t.status == "COMPLETED"]
    with mlflow.start_run(run_id=parent_id):
        counts = {}
        for trial in oracle.trials.values():
            counts[trial.status] = counts.get(trial.status, 0) + 1
        mlflow.log_metrics({f"trials_{status.lower()}": n for status, n in counts.items()})
        if not trials:
            mlflow.end_run(status="FAILED")
            raise RuntimeError("no trial finished; see the trial runs' errors in MLflow")
        best = oracle.get_best_trials(1)[0]
        # Tags, not params: a resumed job may find a better trial, and params cannot change.
        mlflow.set_tags({f"best.{k}": v for k, v in best.hyperparameters.values.items()})
        mlflow.log_dict(best.hyperparameters.values, "best_hyperparameters.json")
        mlflow.log_metric(f"best_{app.monitor}", best.score)
        mlflow.log_metric("best_trial", int(best.trial_id))
        tracking.log_report("trials.png", comparison_figure(trials, oracle.objective))
        hypermodel = tuner.hypermodel
        best_args = hypermodel.trial_args(best.hyperparameters)
        data = hypermodel.data(best_args)
        model = tuner.load_model(best)
        finish_model(
            app, best_args, model, data, folder / "best",
            trial_history(parent_id, experiment_id, best.trial_id, app), prefix="best_",
        )  # fmt: skip
    table = "\n".join(
        f"  trial {t.trial_id}: {app.monitor} {t.score:.4f}  {t.hyperparameters.values}" for t in
        sorted(trials, key=lambda t: t.score, reverse=app.monitor_mode == "max")[:5]
    )  # fmt: skip
    print(f"\nbest trials:\n{table}\nparent run {parent_id}: best model at runs:/{parent_id}/model")
    return best
