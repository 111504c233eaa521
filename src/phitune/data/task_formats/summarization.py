"""`task.type: summarization` — `document_key` -> `summary_key`. The user turn is the document, the
answer the summary."""

from __future__ import annotations

from phitune.data.task_formats.common import conversation, text
from phitune.data.task_registry import register_task

DEFAULT_INSTRUCTION = "Summarize the document in one sentence."


@register_task("summarization")
def format_summarization(task, record: dict):
    document = text(record, task.document_key, "task.document_key", what="document")
    summary = text(record, task.summary_key, "task.summary_key", what="summary")
    return conversation(task.instruction or DEFAULT_INSTRUCTION, document, summary)
