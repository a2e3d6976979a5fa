"""What only the flows run on: the DVC runner, warm step processes, the workspace lock,
isolated workspaces, experiments and the check of ``dvc.yaml``'s code deps."""
