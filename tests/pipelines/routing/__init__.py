"""Tests of the routing pipeline."""
