"""The ten workflow steps, one module each; ``tasks.core`` holds what they stand on."""
