"""Runtime: the DVC runner, the workspace lock, isolated workspaces and the compute engine."""
