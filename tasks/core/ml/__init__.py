"""Modelling: model definitions, model inputs, metrics, costs and evaluation helpers."""
