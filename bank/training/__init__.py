"""Training classes into a registry: one class, or one per sub-folder in parallel processes."""
