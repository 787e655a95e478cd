"""Kedro project settings for ``ddr_pipeline``.

https://docs.kedro.org/en/stable/kedro_project_setup/settings.html
"""

import os

from ddr_pipeline.project.console import apply_verbosity, filter_known_warnings

# First: known third-party warnings (some are emitted while the rest is imported); DDR_VERBOSE=1
# keeps them and Kedro's per-dataset load/save lines.
filter_known_warnings()
apply_verbosity()

from ddr_pipeline.project.config_loader import ProjectConfigLoader  # noqa: E402
from ddr_pipeline.project.hooks import (  # noqa: E402
    DataProcessingLockHooks,
    MlflowRunHooks,
    ModelOutputHooks,
    ParameterValidationHooks,
    PreflightHooks,
    ProjectGuardHooks,
)

# Telemetry off by default: MLflow reads this before it first reports (set it to "false" to opt
# in); Kedro's own opt-out is the committed `.telemetry` file (`consent: false`).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# Checks before a run (bad --params keys, invalid parameters, missing inputs) and MLflow run
# names, links to the training run, headline metrics and failure reasons
# (docs/getting_started.md, docs/configuration.md); run names, the MLflow artifact location and
# orphaned runs (docs/guarantees.md).
HOOKS = (
    PreflightHooks(),
    ParameterValidationHooks(),
    DataProcessingLockHooks(),
    MlflowRunHooks(),
    ModelOutputHooks(),
    ProjectGuardHooks(),
)

# OmegaConfigLoader, except that `--params` replace tables such as the learning-rate schedule.
CONFIG_LOADER_CLASS = ProjectConfigLoader

# ``conf/base`` holds the committed defaults; ``conf/local`` (git-ignored) is the default overlay;
# ``--env test`` overlays ``conf/test``. Parameters, globals and kedro-mlflow settings merge
# deeply, so an environment file may override one nested key without repeating the whole block.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft", "mlflow": "soft", "globals": "soft"},
}
