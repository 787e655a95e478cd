"""A raw Parquet table a geodataset may lack (``lakes.parquet``): it loads empty when absent."""

from __future__ import annotations

import pandas as pd
from kedro_datasets.pandas import ParquetDataset


class OptionalParquetDataset(ParquetDataset):
    """``pandas.ParquetDataset`` that loads an empty DataFrame when its file does not exist, so a
    pipeline can read an optional input table and its consumer decides what absence means."""

    def _exists(self) -> bool:
        """Always: an absent table is a valid (empty) input, not a missing one."""
        return True

    def load(self) -> pd.DataFrame:
        """The table, or an empty DataFrame when the file is absent."""
        if not super()._exists():
            return pd.DataFrame()
        return super().load()
