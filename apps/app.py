"""The contract between an app and the shared runner: the `App` class.

An app is a subclass that says what data, what model and what metric; the
runner (`apps.cli`, `apps.training`, `apps.tuning`, `apps.saved`) does the
rest: the command line, the training loop, checkpoints and resume, tracking,
tuning, saving and serving. `docs/writing-an-app.md` walks through a minimal app.
"""

import types

# The `tune` search space every app starts from (see apps.tuning for the format).
DEFAULT_SPACE = {
    "cell": {"choice": ["elman", "jordan", "peephole_lstm", "simple_rnn", "lstm", "gru"]},
    "units": {"int": [32, 256], "step": 32},
    "layers": {"int": [1, 2]},
    "bidirectional": {"boolean": True},
    "dropout": {"float": [0.0, 0.5], "step": 0.1},
    "learning_rate": {"float": [1e-4, 1e-2], "sampling": "log"},
}

# What the runner's own flags meant before they existed, for runs saved by older versions.
COMMON_LEGACY_ARGUMENTS = {
    "time_limit": 0, "ema": 0.0, "reduce_lr": 0, "members": 1, "fold": None, "cv": None,
    "distribute": "none", "workers": None, "worker_index": None,
}  # fmt: skip


class UserError(Exception):
    """A problem the user can fix (bad argument, missing file): printed without a traceback."""


class WorkerLost(Exception):
    """A worker of a multi-worker training stopped answering (`apps.distributed`): the job stops,
    printed without a traceback, and resumes when the workers are started again."""


def model_state(model):
    """What was fitted for `model`, as opposed to its data: a namespace the app fills (slot
    filling's decoder and CRF, keywords' phrase ranking, sentiment's network scores).

    The data object an app's `load_data` returns holds the data and what is fitted on it alone
    (vocabularies, n-gram tables), so that tuning trials, folds and ensemble members can share
    it; a decoder, a ranking fitted after training or any other state of one model lives here,
    with the model. A plain attribute: Keras does not track it, so the model's weights and
    checkpoints are unchanged.
    """
    state = getattr(model, "fitted_state", None)
    if state is None:
        state = types.SimpleNamespace()
        model.fitted_state = state
    return state


class App:
    """What an app defines. The runner calls these; everything else is shared.

    Must define (class attributes):
        name: the app's name (the module `apps.NAME`, the MLflow experiment, the `app` tag).
        datasets: the `--dataset` choices, the first being the default.
        monitor: the validation metric that selects the best epoch ("val_" + a key of `evaluate`).

    Must define (methods): `load_data`, `build_model`, `compile_arguments`, `fit_dataset`,
    `evaluate`, `serving_model`, `evaluate_saved`, `predict`.

    May define: `description`, `input_kind`, `read_inputs`, `show`, `display_flags`, `monitor_mode`,
    `defaults`, `dataset_help`, `data_arguments`, `legacy_arguments`, `renamed_arguments`,
    `curve_metrics`, `supports_cv` (then `load_data` reads `args.fold` and `args.cv`),
    `supports_members` (then `average_members`), `search_space`, `add_arguments`,
    `add_predict_arguments`, `add_evaluate_arguments`, `commands`, `after_training`,
    `baseline_metrics`, `reports`, `save_assets`, `model_metadata`, `evaluation_model`.

    The data object `load_data` returns is the app's own; the runner only calls its
    `has_split(split)`. It holds the data and what is fitted on the data alone; what is fitted
    for one model (a decoder, a ranking fitted after training) goes to `model_state(model)`.
    """

    name = None
    description = ""
    datasets = ()
    monitor = None
    monitor_mode = "max"  # or "min"
    # What `predict` and the served model read: "text" (raw strings) or "audio" (wav files; bytes
    # when served).
    input_kind = "text"
    # `predict` flags that change only how `show` prints a record: not the served model's parameters.
    display_flags = ()
    # Default values of the common training flags (cell, units, epochs, ...).
    defaults = {}
    # Validation metrics (besides the loss and `monitor`) drawn in the learning curve.
    curve_metrics = ()
    supports_cv = False  # whether `train --cv K` (K-fold cross-validation) applies
    supports_members = False  # whether `train --members N` applies (the app defines `average_members`)
    # Flags whose values change the data (a tuning trial that varies them reloads it).
    data_arguments = ("dataset", "data_dir", "batch_size", "seed")
    # Set when --dataset also takes open-ended specs (csv:PATH, ...): its help text.
    dataset_help = None
    # {flag: value}: what a flag added later meant before it existed. A resumed run's saved
    # arguments lack it; the runner fills it in when it reads them (`apps.training`).
    legacy_arguments = {}
    # {former flag: flag}: flags renamed since; a saved run's former name is read as the new one.
    renamed_arguments = {}

    @property
    def search_space(self):
        """The default `tune` search space (see apps.tuning)."""
        return DEFAULT_SPACE

    def add_arguments(self, parser):
        """Adds the app's own `train` flags (model and data options)."""

    def add_predict_arguments(self, parser):
        """Adds the app's own `predict` flags."""

    def add_evaluate_arguments(self, parser):
        """Adds the app's own `evaluate` flags."""

    # Data and model -----------------------------------------------------------------------
    def load_data(self, args):
        """Reads and encodes the data set; returns an object the other methods understand."""
        raise NotImplementedError

    def fit_dataset(self, data, split):
        """The `tf.data` pipeline `Model.fit` reads for `split` ("train" or "valid")."""
        raise NotImplementedError

    def build_model(self, args, data):
        """The training model (uncompiled)."""
        raise NotImplementedError

    def start_weights(self, model, args, data):
        """Sets a newly built model's weights before it trains (pretraining: sentiment's
        --pretrained-encoder, --autoencoder-epochs); not called for a model whose weights are
        then loaded (a resumed training, an ensemble's members). By default Keras' initialisation."""

    def compile_arguments(self, args, data, model):
        """`loss` (and `loss_weights`, `metrics`) for `model.compile` (a CRF's loss reads its layer)."""
        raise NotImplementedError

    def evaluation_model(self, model, data):
        """The model `evaluate` scores after each epoch and at the end: by default the training
        model itself; a generating app returns its inference model (built from the training
        model's layers), since teacher forcing is not what it will be used with."""
        return model

    # Metrics and reports -------------------------------------------------------------------
    def evaluate(self, model, data, split):
        """The app's metrics (fractions 0..1) on `split` of `model`, which the runner passes
        through `evaluation_model` first."""
        raise NotImplementedError

    def after_training(self, model, data):
        """A last step on the best epoch's model before it is tested and saved (e.g. blending two
        classifiers' scores with weights fitted on the validation split); returns metrics to log."""
        return {}

    def average_members(self, members, data):
        """With `train --members N`: one model (uncompiled) from N trained training models,
        e.g. their averaged class probabilities (`layers.AveragedProbabilities`)."""
        raise NotImplementedError

    def baseline_metrics(self, data, split):
        """Metrics of a baseline method on `split`, logged beside the model's (e.g. tfidf_f1_at_10)."""
        return {}

    def reports(self, model, data, split):
        """{file name: text or matplotlib figure}: artifacts describing the model on `split`."""
        return {}

    # Saving and serving --------------------------------------------------------------------
    def save_assets(self, data, folder):
        """Writes what reproduces the preprocessing (vocabularies, ...) into `folder`."""

    def serving_model(self, model, data, args):
        """The model saved (.keras) and logged: the network with what `predict` needs to read raw
        input (tokenizer, vocabularies, settings) as its parts."""
        raise NotImplementedError

    def model_metadata(self, serving_model):
        """Metadata stored with the logged model (e.g. the class names of its outputs)."""
        return None

    def evaluate_saved(self, serving_model, args):
        """Metrics of a saved serving model on `args.split` of `args.dataset`."""
        raise NotImplementedError

    def predict(self, serving_model, inputs, args):
        """The predictions for `inputs` (raw strings, or paths for audio): one record (a dict of
        JSON types) per input, in order. Prints nothing: the command line shows the records
        (`show`, or JSON with --json) and the logged model returns them over REST
        (`apps.serving`), so what is served is what `predict` prints."""
        raise NotImplementedError

    def read_inputs(self, inputs):
        """The command line's inputs as `predict` reads them (keywords: a named file's text). Not
        applied to served requests: a server does not read its own files for a client."""
        return inputs

    def show(self, record, args):
        """Prints one of `predict`'s records for a person (default: as JSON)."""
        import json

        print(json.dumps(record, ensure_ascii=False))

    def commands(self):
        """The app's own commands on a saved model (an auto-encoder's `encode`, `search`, ...):
        {name: (help, add_arguments(parser), run(serving_model, args))}. The runner adds --model
        and the store flags, loads the model as `evaluate` does and calls `run`."""
        return {}
