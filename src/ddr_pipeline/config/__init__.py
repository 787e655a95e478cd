"""Typed, validated configuration: training (:mod:`.training`) and the other pipelines (:mod:`.pipelines`)."""
