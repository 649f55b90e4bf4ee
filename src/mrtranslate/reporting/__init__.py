"""Reporting: tables, figures, statistics and the self-contained HTML report (reads eval output)."""
