"""Step 10, monitoring: is the serving model still seeing the data it was trained on?

Pure functions over frames; the monitoring flow (``flows/monitoring.py``) does the I/O and
runs each check as a Prefect task of its own:

- :mod:`tasks.monitor.drift`: data and prediction drift with Evidently, as the size of a shift;
- :mod:`tasks.monitor.checks`: live performance on the labels that arrived, input quality
  with the raw suite, categories the model never saw, the shadow comparison for rollback;
- :mod:`tasks.monitor.policy`: when the findings alert, the cooldown, the alert episode
  and when retraining is requested.
"""
