"""Ingest: conversion of source datasets into the input schema (docs/data_formats.md).

Apart from the model library: nothing under :mod:`ddr_pipeline.data`, the models, training or
the pipelines imports this package. Each converter is a command (``[project.scripts]``):
``ddr-convert-drb``, ``ddr-convert-hydrofabric``, ``ddr-convert-merit``, ``ddr-convert-ddr`` (a DDR
bundle and its config: :mod:`~ddr_pipeline.ingest.ddr`, :mod:`~ddr_pipeline.ingest.ddr_config`);
shared pieces live in :mod:`~ddr_pipeline.ingest.stores` (time-series stores, store kinds),
:mod:`~ddr_pipeline.ingest.icechunk_format` (local Icechunk format-2 repositories, read-only),
:mod:`~ddr_pipeline.ingest.lateral_inflow` (lateral-inflow sources: store, NWM),
:mod:`~ddr_pipeline.ingest.adjacency` (sparse network store) and :mod:`~ddr_pipeline.ingest.cli`
(command-line options).
"""
