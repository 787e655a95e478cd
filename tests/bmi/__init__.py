"""Tests of the BMI component (ddr_pipeline.bmi)."""
