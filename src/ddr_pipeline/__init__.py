"""ddr_pipeline: differentiable river routing (KAN + LSTM + Muskingum-Cunge) as a Kedro project."""

__version__ = "0.1.0"
