"""Tests of ddr_pipeline.data (schema, io, adapters)."""
