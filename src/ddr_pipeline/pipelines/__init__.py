"""Kedro pipelines: one folder each, thin nodes over the library."""
