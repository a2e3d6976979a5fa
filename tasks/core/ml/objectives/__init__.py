"""The problem types behind the objective (:mod:`tasks.core.ml.objective`), a module each."""
