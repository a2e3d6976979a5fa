"""Service tests use the session's trained project (tests/conftest.py: ``trained_project``)."""
