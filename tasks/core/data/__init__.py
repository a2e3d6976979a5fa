"""Data: sources (the simulator, CSV, Parquet, SQL), immutable snapshots, schema and labels."""
