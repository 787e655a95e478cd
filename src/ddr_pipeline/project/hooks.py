"""Kedro hooks: checks before a run (parameters, inputs), MLflow run names / links / headline
metrics, failure reasons.

Registered in ``settings.py``. The logic lives in :mod:`ddr_pipeline.project.preflight` and
:mod:`ddr_pipeline.project.tracking`; these hooks only feed them what Kedro knows about the run.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset
from kedro.pipeline import Pipeline

from ddr_pipeline.config.pipelines import SECTIONS, validate_parameters
from ddr_pipeline.data.io import clean_stale_temporaries
from ddr_pipeline.data.provenance import processing_lock
from ddr_pipeline.model_store.checkpoints import (
    MODEL_FINGERPRINT_ATTR,
    CheckpointError,
    LoadedCheckpoint,
    check_output_model,
    model_fingerprint,
)
from ddr_pipeline.project import guard as project_guard
from ddr_pipeline.project import preflight, tracking
from ddr_pipeline.project.pipeline_folders import pipeline_folders

logger = logging.getLogger(__name__)

#: Names read by ``${runtime_params:<name>, ...}`` in the configuration files.
_RUNTIME_PARAM = re.compile(r"runtime_params:\s*([\w.]+)")
#: Output dataset holding the headline metrics (also logged on the training run).
HEADLINE_DATASET = "evaluation.headline_metrics"


def _producers() -> dict[str, str]:
    """``{dataset: registered pipeline that writes it}`` (built directly, not via the registry)."""
    producers: dict[str, str] = {}
    for name in pipeline_folders():
        module = importlib.import_module(f"ddr_pipeline.pipelines.{name}.pipeline")
        for output in module.create_pipeline().all_outputs():
            producers.setdefault(output, name)
    return producers


def _where(catalog: Any, name: str) -> str:
    config = catalog.config_resolver.resolve_pattern(name) or {}
    inner = config.get("dataset") if isinstance(config.get("dataset"), Mapping) else {}
    return str(config.get("filepath") or inner.get("filepath") or config.get("type", "?"))


def missing_inputs(pipeline: Pipeline, catalog: Any) -> dict[str, str]:
    """Free, persisted inputs of ``pipeline`` that do not exist: ``{name: file path}``."""
    missing = {}
    for name in sorted(pipeline.inputs()):
        if name == "parameters" or name.startswith("params:"):
            continue
        if name not in catalog or isinstance(catalog.get(name), MemoryDataset):
            continue
        if not catalog.exists(name):
            missing[name] = _where(catalog, name)
    return missing


def runtime_only_params(conf_source: str | Path) -> set[str]:
    """Keys that only ``${runtime_params:...}`` reads (``run_name``) in the config files."""
    names: set[str] = set()
    for path in Path(conf_source).rglob("*.yml"):
        names.update(_RUNTIME_PARAM.findall(path.read_text(encoding="utf-8")))
    return names


def _base_parameters(context: Any) -> dict[str, Any]:
    """The project's parameters without the ``--params`` overrides."""
    from kedro.framework.project import settings

    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(context.config_loader.conf_source),
        env=context.env,
        runtime_params={},
        **settings.CONFIG_LOADER_ARGS,
    )
    return loader["parameters"]


def parameter_sections(pipeline: Pipeline) -> list[str]:
    """Typed parameter sections (``params:<section>...``) that ``pipeline`` reads, sorted."""
    used = {name.removeprefix("params:").split(".")[0] for name in pipeline.inputs()}
    return sorted(used & set(SECTIONS))


class ParameterValidationHooks:
    """Fail a run whose parameters are invalid, naming every offending key path."""

    @hook_impl(tryfirst=True)  # before kedro-mlflow opens a run
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any
    ) -> None:
        """Validate every section the pipeline reads (``ConfigError`` before any node runs)."""
        sections = parameter_sections(pipeline)
        if sections:
            validate_parameters(catalog.load("parameters"), sections)
            logger.info("validated parameters: %s", ", ".join(sections))


class PreflightHooks:
    """Fail before any work (and before an MLflow run exists) on the common mistakes."""

    def __init__(self) -> None:
        self._context: Any = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Keep the context: its config loader gives the parameters without overrides."""
        self._context = context

    @hook_impl(tryfirst=True)
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any
    ) -> None:
        """Check ``--params`` keys, then that every persisted input of the run exists."""
        overrides = run_params.get("runtime_params") or {}
        if overrides and self._context is not None:
            conf_source = self._context.config_loader.conf_source
            preflight.check_param_overrides(
                overrides, _base_parameters(self._context), runtime_only_params(conf_source)
            )
        missing = missing_inputs(pipeline, catalog)
        if missing:
            raise preflight.UserError(preflight.missing_inputs_message(missing, _producers()))


def _run_name(params: Mapping[str, Any], pipelines: list[str]) -> str:
    """The run name (``<pipeline>.run_name``); the geodataset for data_processing alone."""
    if pipelines == ["data_processing"]:
        return str(params.get("data_processing", {}).get("geodataset", "data"))
    for name in [*pipelines, "training", "evaluation", "routing"]:
        block = params.get(name)
        if isinstance(block, Mapping) and block.get("run_name"):
            return str(block["run_name"])
    return "run"


class MlflowRunHooks:
    """Names, links and marks the MLflow run that kedro-mlflow opens for ``kedro run``."""

    def __init__(self) -> None:
        self._params: Mapping[str, Any] = {}
        self._training_run_id: str | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Keep the run's parameters (for the run name)."""
        self._params = context.params

    @hook_impl(trylast=True)  # after kedro-mlflow's hook has started the run
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        """Name the run ``<pipeline>:<run name>`` and tag the run name and pipelines."""
        import mlflow

        self._training_run_id = None
        if mlflow.active_run() is None:
            return
        pipelines = list(run_params.get("pipeline_names") or ["__default__"])
        run_name = _run_name(self._params, pipelines)
        mlflow.set_tags(
            {
                tracking.RUN_NAME_TAG: tracking.mlflow_run_name(pipelines, run_name),
                "ddr.run_name": run_name,
                "ddr.pipelines": ",".join(pipelines),
            }
        )

    @hook_impl
    def after_node_run(self, node: Any, outputs: dict[str, Any]) -> None:
        """Fingerprint trained models, link runs that load one, copy headline metrics over."""
        import mlflow

        run = mlflow.active_run()
        if run is None:
            return
        client = mlflow.MlflowClient()
        for name, value in outputs.items():
            if isinstance(value, Mapping) and "model_state_dict" in value:  # trained here
                fingerprint = model_fingerprint(value["model_state_dict"])
                mlflow.set_tag(tracking.FINGERPRINT_TAG, fingerprint)
                self._training_run_id = run.info.run_id
            elif isinstance(value, LoadedCheckpoint):  # a model loaded for evaluation/routing
                self._link(client, run.info.run_id, value)
            elif name == HEADLINE_DATASET and self._training_run_id not in (None, run.info.run_id):
                for key, metric in value.items():
                    client.log_metric(self._training_run_id, key, metric["value"])

    def _link(self, client: Any, run_id: str, ckpt: LoadedCheckpoint) -> None:
        import mlflow

        fingerprint = model_fingerprint(ckpt.payload["model_state_dict"])
        run = client.get_run(run_id)
        training = tracking.find_training_run(client, [run.info.experiment_id], fingerprint)
        if training is None:
            logger.info("MLflow: no training run in this experiment produced the loaded model")
            return
        self._training_run_id = training.info.run_id
        tracking.link_to_training_run(client, run, training, mlflow.get_tracking_uri())

    @hook_impl(tryfirst=True)  # before kedro-mlflow's hook closes the run as FAILED
    def on_pipeline_error(self, error: Exception) -> None:
        """Record why the run failed (tag ``ddr.failure_reason`` and the run description)."""
        import mlflow

        if mlflow.active_run() is None:
            return
        reason = tracking.failure_note(error)
        mlflow.set_tags({tracking.FAILURE_TAG: reason, tracking.NOTE_TAG: f"**Failed:** {reason}"})


class ProjectGuardHooks:
    """Keep runs inside the project (:mod:`ddr_pipeline.project.guard`): run names, MLflow
    artifact location, orphaned runs and temporaries of killed writers."""

    @hook_impl(trylast=True)  # after kedro-mlflow has set up the tracking URI and experiment
    def after_context_created(self, context: Any) -> None:
        """Check every run name, clean up after killed writers, check the MLflow setup."""
        project_guard.check_run_names(context.params)
        for root in project_guard.data_roots(context):
            clean_stale_temporaries(root)
        project_guard.check_tracking(context)

    @hook_impl(trylast=True)  # after kedro-mlflow has started the run
    def before_pipeline_run(self) -> None:
        """Tag the run with host and process id (orphaned runs are found by them)."""
        project_guard.tag_active_run()


#: The ``data_processing`` node whose output names a geodataset's model-input folder.
_PROCESSING_OUTPUT = "model_inputs"


def processed_geodatasets(pipeline: Pipeline) -> list[str]:
    """Geodatasets whose ``data_processing`` outputs ``pipeline`` writes (``<geo>.model_inputs``)."""
    return sorted(
        name.removesuffix(f".{_PROCESSING_OUTPUT}")
        for name in pipeline.all_outputs()
        if name.endswith(f".{_PROCESSING_OUTPUT}") and name.count(".") == 1
    )


class DataProcessingLockHooks:
    """Hold each processed geodataset's ``data_processing`` lock for the whole run
    (:func:`ddr_pipeline.data.provenance.processing_lock`): a second run fails at once instead
    of leaving a mix of the two runs' outputs."""

    def __init__(self) -> None:
        self._locks = ExitStack()

    @hook_impl(tryfirst=True)  # before any node, before kedro-mlflow opens a run
    def before_pipeline_run(self, pipeline: Pipeline, catalog: Any) -> None:
        """Take the lock of every geodataset the run writes model inputs for."""
        self._locks.close()
        for geodataset in processed_geodatasets(pipeline):
            folder = Path(_where(catalog, f"{geodataset}.{_PROCESSING_OUTPUT}")).parent
            self._locks.enter_context(processing_lock(folder, geodataset))

    @hook_impl
    def after_pipeline_run(self) -> None:
        """Release the locks."""
        self._locks.close()

    @hook_impl
    def on_pipeline_error(self) -> None:
        """Release the locks."""
        self._locks.close()


def _stored_attrs(path: str) -> dict[str, Any]:
    """Attributes of the zarr store at ``path`` (empty when there is none or it is unreadable)."""
    import xarray as xr

    if not Path(path).exists():
        return {}
    try:
        with xr.open_zarr(path, consolidated=False) as stored:
            return dict(stored.attrs)
    except (OSError, ValueError, KeyError):
        return {}


class ModelOutputHooks:
    """Report a model output (``model_fingerprint`` attribute) that replaces one made from
    another model: the earlier results stop standing for that model."""

    def __init__(self) -> None:
        self._catalog: Any = None

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        """Keep the catalog (where each output is stored)."""
        self._catalog = catalog

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any) -> None:
        """Warn when ``dataset_name`` on disk was made from another model than ``data``."""
        fingerprint = getattr(data, "attrs", {}).get(MODEL_FINGERPRINT_ATTR)
        if fingerprint is None or self._catalog is None:
            return
        path = _where(self._catalog, dataset_name)
        try:
            check_output_model(_stored_attrs(path), fingerprint, path)
        except CheckpointError as error:
            logger.warning("Replacing an output of another model: %s", error)
