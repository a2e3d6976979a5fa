"""Serving: the model registry, record scoring and the prediction store."""
