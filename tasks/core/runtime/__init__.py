"""Runtime the steps stand on: the compute engine (local processes or a Dask cluster)."""
