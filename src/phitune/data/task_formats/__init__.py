"""Formatters for the tasks beyond chat and completion, one module per task. Importing this package
registers them with `phitune.data.task_registry.register_task` (phitune.data.tasks imports it)."""

from phitune.data.task_formats import classification, ner, qa, summarization, translation  # noqa: F401
