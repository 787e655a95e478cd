"""Ingest: conversion of source datasets into the input schema (docs/data_formats.md).

Apart from the model library: nothing under :mod:`ddr_pipeline.data`, the models, training or
the pipelines imports this package. Each converter is a command (``[project.scripts]``):
``ddr-convert-drb``, ``ddr-convert-hydrofabric``, ``ddr-convert-merit``; shared pieces live in
:mod:`~ddr_pipeline.ingest.stores` (time-series stores), :mod:`~ddr_pipeline.ingest.adjacency`
(sparse network store) and :mod:`~ddr_pipeline.ingest.cli` (command-line options).
"""
