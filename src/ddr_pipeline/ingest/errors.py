"""Errors shared by the ingest modules."""

from __future__ import annotations


class StoreError(ValueError):
    """A store that cannot be read as asked (names the store, variable, dims, units or ids)."""
