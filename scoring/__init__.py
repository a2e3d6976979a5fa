"""Scoring records with a registered model, and storing what was predicted.

The library the HTTP service and the flows (batch scoring, monitoring) share: the pandas
definition of scoring and its compiled per-record path (:mod:`scoring.scoring`,
:mod:`scoring.compiled`, the field rules both apply in :mod:`scoring.fields`), and the
prediction store (:mod:`scoring.store`: SQL rows, Arrow segments of model inputs,
request counts). The steps never import it; the registry it loads from is in the base
(:mod:`tasks.core.serving.registry`).
"""
