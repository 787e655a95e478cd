"""Tests of data-parallel training and parallel domain routing."""
