"""Raw scans in (own grids, thick slices, skull): registration, brain extraction, the
``data prepare`` pipeline, its QC pictures and ``translate --raw``."""
