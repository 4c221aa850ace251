"""The runner every app shares, in one import: `App` to subclass, `main` to call.

    from apps import runner

    class MyApp(runner.App): ...           # what data, what model, what metric (apps.app)
    sys.exit(runner.main(MyApp()))          # the command line (apps.cli)

The pieces, each with one job: `apps.app` (the contract), `apps.cli` (flags and
commands), `apps.training` (runs: single, --cv, --members, --resume),
`apps.training_loop` (compile and fit, shared with tuning), `apps.finishing` (the
one path that finishes and logs a model), `apps.tuning` (keras-tuner jobs),
`apps.saved` (loading, evaluate, predict), `apps.tracking` (MLflow helpers).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from apps.app import App, UserError, model_state  # noqa: E402
from apps.cli import (  # noqa: E402
    build_parser,
    fraction,
    main,
    non_negative_int,
    non_negative_number,
    odd_positive_int,
    positive_int,
    positive_number,
    seed,
)

__all__ = [
    "App", "UserError", "build_parser", "fraction", "main", "model_state",
    "non_negative_int", "non_negative_number", "odd_positive_int", "positive_int", "positive_number", "seed",
]  # fmt: skip
