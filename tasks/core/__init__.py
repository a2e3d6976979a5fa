"""Shared base of the steps: typed config, paths, I/O, sources, the DVC pipeline runner."""
