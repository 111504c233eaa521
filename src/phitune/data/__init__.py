"""Data: readers, per-task checks, templating and label masking, batching."""
