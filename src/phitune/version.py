"""phitune's version, in a module of its own so that any module (the model card, export reports, job
tags) can read it without importing the `phitune` package, whose lazy names lead to training."""

__version__ = "0.1.0"  # keep equal to `version` in pyproject.toml
