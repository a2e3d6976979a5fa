"""Tooling shared by the tests, `make demo` and `make bench`: project copies and local servers."""
