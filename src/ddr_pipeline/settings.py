"""Kedro project settings for ``ddr_pipeline``.

https://docs.kedro.org/en/stable/kedro_project_setup/settings.html
"""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader

# ``conf/base`` holds the committed defaults; ``conf/local`` (git-ignored) is the default overlay;
# ``--env test`` overlays ``conf/test``. Parameters, globals and kedro-mlflow settings merge
# deeply, so an environment file may override one nested key without repeating the whole block.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft", "mlflow": "soft", "globals": "soft"},
}
