"""``CheckpointDataset``: a training checkpoint ``.pt`` file (local filesystem, atomic save).

``save`` takes the checkpoint payload dict (``ddr_pipeline.model_store.checkpoints``) and writes it
atomically; ``load`` returns a :class:`~ddr_pipeline.training.LoadedCheckpoint` (the rebuilt
``RoutingModel`` in eval mode with its config, normalisation statistics and input names), or
the raw payload dict with ``load_args: {as_model: false}``. Loading uses ``weights_only=True``.

Example (``catalog.yml``)::

    training.trained_model:
      type: ddr_pipeline.project.datasets.checkpoint.CheckpointDataset
      filepath: data/06_models/ddr-drb-training/trained_model.pt
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from ddr_pipeline.model_store.checkpoints import (
    CheckpointError,
    LoadedCheckpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)


class CheckpointDataset(AbstractDataset[dict[str, Any], LoadedCheckpoint | dict[str, Any]]):
    """A checkpoint file: save a payload dict, load a ready model (or the payload)."""

    DEFAULT_LOAD_ARGS: dict[str, Any] = {"as_model": True}

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath)
        self._load_args = {**self.DEFAULT_LOAD_ARGS, **(load_args or {})}
        unknown = set(self._load_args) - set(self.DEFAULT_LOAD_ARGS)
        if unknown:
            raise DatasetError(f"CheckpointDataset: unknown load_args {sorted(unknown)}")
        self.metadata = metadata

    def load(self) -> LoadedCheckpoint | dict[str, Any]:
        """The model (``as_model``) or the payload dict of the checkpoint file."""
        try:
            if self._load_args["as_model"]:
                return load_checkpoint(self._filepath)
            return read_checkpoint(self._filepath)
        except CheckpointError as error:
            raise DatasetError(str(error)) from error

    def save(self, data: dict[str, Any]) -> None:
        """Write the payload atomically (temp file in the same folder, then rename)."""
        if not isinstance(data, dict):
            raise DatasetError(
                f"CheckpointDataset saves a checkpoint payload dict, got {type(data).__name__}"
            )
        try:
            save_checkpoint(data, self._filepath)
        except CheckpointError as error:
            raise DatasetError(str(error)) from error

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "load_args": self._load_args}
