"""One label value (a class, or an NER tag) -> its name.

A label is a string, or an integer index into `task.labels` (as Hugging Face ClassLabel columns store
them); `label_text` returns its name or says why it cannot be used. The task formatters
(phitune.data.task_formats) and the label-set scans (phitune.data.labels) both read labels with it.
"""

from __future__ import annotations

from typing import Any

from phitune.data.records import RecordInvalid


def label_text(value: Any, labels: list[str] | None, where: str) -> str:
    """The label name of `value` (`where` names it in messages, e.g. "'label'")."""
    if value is None:
        raise RecordInvalid("empty label", f"{where} is null", "give every record a label, or drop the record")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        kind = "boolean" if isinstance(value, bool) else {list: "list", dict: "object"}.get(type(value), type(value).__name__)
        raise RecordInvalid("bad label", f"{where} is a JSON {kind}, not a label name or number",
                            "write the label as a string (or an integer index into task.labels)")
    if isinstance(value, int):
        text = str(value)
        if labels is not None and text not in labels:
            if 0 <= value < len(labels):
                return labels[value]
            raise RecordInvalid("unknown label", f"{where} is {value}, outside task.labels (indices 0-{len(labels) - 1})",
                                "use an index into task.labels, or the label name")
        return text
    text = value.strip()
    if not text:
        raise RecordInvalid("empty label", f"{where} is empty", "give every record a label, or drop the record")
    if labels is not None and text not in labels and text.isdigit() and int(text) < len(labels):
        return labels[int(text)]  # an index written as text (CSV cells are strings)
    if labels is not None and text not in labels:
        shown = ", ".join(labels[:12]) + (", ..." if len(labels) > 12 else "")
        raise RecordInvalid("unknown label", f"{where} is {text!r}, not one of task.labels ({shown})",
                            "fix the label, or add it to task.labels")
    return text
