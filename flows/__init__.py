"""Prefect flows: they wire the steps in ``tasks/`` into runs, schedules and deployments."""
