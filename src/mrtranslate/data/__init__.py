"""Data sets: the built-in phantom cohort, the on-disk layout, previews and training tensors."""
