"""Evaluation: image-quality measures, translation of the test split, summaries and statistics."""
