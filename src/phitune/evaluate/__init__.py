"""Evaluation: task metrics (a registry keyed by task type), greedy generation, before/after runs."""
