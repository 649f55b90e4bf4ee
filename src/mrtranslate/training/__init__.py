"""The generic training loop, checkpoints, seeding and run records (model-agnostic)."""
