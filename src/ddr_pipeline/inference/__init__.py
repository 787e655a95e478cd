"""Running a trained model: periods and spin-up, gauges over a period, every reach of a domain."""
