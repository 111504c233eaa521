"""Task formatters: one raw record -> a `Sample` that templating knows how to tokenize and mask.

The sample shapes (`ChatSample`, `TextSample`) live in phitune.data.samples, the formatter registry
in phitune.data.task_registry. This module registers chat and completion, imports the formatters of
the other tasks (phitune.data.task_formats) and validates records with them. A new task is one
function registered with `@register_task("ner")` that takes the recipe's task section and a record
and returns a sample, or raises `RecordInvalid(kind, message, fix)`, plus its import in
phitune/data/task_formats/__init__.py.
"""

from __future__ import annotations

from typing import Any

# Registers the formatters of classification, NER, QA, translation and summarization.
import phitune.data.task_formats  # noqa: F401
from phitune.data.records import EvalRecord, RecordInvalid
from phitune.data.samples import ChatSample, Sample, TextSample
from phitune.data.task_registry import formatter_for, register_task, registered_task_types
from phitune.errors import RecipeError, Problem

ROLES = ("system", "user", "assistant")
CHAT_SHAPE = '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'


def task_types() -> list[str]:
    """Task types that have a formatter (every `task.type` a recipe may name)."""
    return registered_task_types()


def format_record(task, record: Any) -> Sample:
    """Validate one record for `task` (a recipe task section) and return its sample."""
    formatter = formatter_for(task.type)
    if formatter is None:
        raise RecipeError(
            f"no data formatter for task type {task.type!r}",
            [Problem("task.type", f"phitune.data has no formatter for {task.type!r}",
                     f"supported: {', '.join(sorted(task_types()))}")],
        )
    if not isinstance(record, dict):
        raise RecordInvalid("not a JSON object", f"the record is a JSON {_json_type(record)}, not an object",
                            f"each line must be a JSON object such as {_example_shape(task)}")
    return formatter(task, record)


def to_eval_record(sample: Sample, source: str) -> EvalRecord | None:
    """The prompt/reference pair used to evaluate generations. Plain text (no prompt) has none."""
    if hasattr(sample, "eval_record"):  # classifier-head samples (phitune.data.heads) bring their own
        return sample.eval_record(source)
    if isinstance(sample, ChatSample):
        return EvalRecord(prompt_messages=sample.messages[:-1], prompt_text=None,
                          reference=sample.messages[-1]["content"], source=source)
    if not sample.prompt:
        return None
    return EvalRecord(prompt_messages=None, prompt_text=sample.prompt, reference=sample.answer, source=source)


@register_task("chat")
def format_chat(task, record: dict) -> ChatSample:
    key = task.messages_key
    if key not in record:
        found = ", ".join(repr(k) for k in list(record)[:5]) or "none"
        raise RecordInvalid("missing messages", f"no {key!r} key (keys found: {found})",
                            f"each line must look like {CHAT_SHAPE}" if key == "messages"
                            else f"set task.messages_key to the key holding the conversation, or add {key!r}")
    messages = record[key]
    if not isinstance(messages, list):
        raise RecordInvalid("messages not a list", f"{key!r} is a JSON {_json_type(messages)}, not a list of messages",
                            f"use {CHAT_SHAPE}")
    if not messages:
        raise RecordInvalid("empty messages", f"{key!r} is an empty list", "add at least a user and an assistant message")
    clean = [_check_message(i, m) for i, m in enumerate(messages, start=1)]
    if clean[0]["role"] == "assistant":
        raise RecordInvalid("starts with assistant", "the conversation starts with an assistant turn: there is no prompt for it",
                            "add the user (or system) message it answers, or drop that turn")
    if not any(m["role"] == "assistant" for m in clean):
        raise RecordInvalid("no assistant turn", "no assistant turn: nothing to learn",
                            "add the assistant reply the model should learn")
    if clean[-1]["role"] != "assistant":
        raise RecordInvalid("not ending with assistant",
                            f"the conversation ends with a {clean[-1]['role']} turn, not an assistant turn",
                            "end every conversation with the assistant reply (drop trailing turns)")
    return ChatSample(clean)


def _check_message(position: int, message: Any) -> dict:
    where = f"message {position}"
    if not isinstance(message, dict):
        raise RecordInvalid("bad message", f"{where} is a JSON {_json_type(message)}, not an object",
                            'each message must be {"role": ..., "content": ...}')
    if "role" not in message:
        raise RecordInvalid("bad message", f"{where} has no 'role'", "add a role: system, user or assistant")
    role = message["role"]
    if role not in ROLES:
        raise RecordInvalid("unknown role", f"{where} has unknown role {role!r}", "roles must be system, user or assistant")
    if "content" not in message:
        raise RecordInvalid("bad message", f"{where} ({role}) has no 'content'", "add the message text as 'content'")
    content = message["content"]
    if not isinstance(content, str):
        raise RecordInvalid("non-string content",
                            f"{where} ({role}) content is a JSON {_json_type(content)}, not a string",
                            "content must be plain text (multi-part or tool content is not supported)")
    if role == "assistant" and not content.strip():
        raise RecordInvalid("empty assistant turn", f"{where} (assistant) is empty: nothing to learn",
                            "write the reply, or drop the turn")
    return {"role": role, "content": content}


@register_task("completion")
def format_completion(task, record: dict) -> TextSample:
    azure = task.text_key is not None  # Azure ML's names: text_key (+ ground_truth_key)
    if task.input_key is None:  # plain text, every token learned
        text = _string_field(record, task.text_key, "task.text_key")
        if not text.strip():
            raise RecordInvalid("empty text", f"{task.text_key!r} is empty: nothing to learn", "drop the record")
        return TextSample(prompt="", answer=text)
    prompt = _string_field(record, task.input_key, "task.text_key" if azure else "task.prompt_key")
    completion = _string_field(record, task.target_key, "task.ground_truth_key" if azure else "task.completion_key")
    if not completion.strip():
        raise RecordInvalid("empty completion", f"{task.target_key!r} is empty: nothing to learn",
                            "write the completion, or drop the record")
    if task.learn == "all":
        return TextSample(prompt="", answer=prompt + completion)
    return TextSample(prompt=prompt, answer=completion)


def _string_field(record: dict, key: str, setting: str) -> str:
    if key not in record:
        found = ", ".join(repr(k) for k in list(record)[:5]) or "none"
        raise RecordInvalid("missing key", f"no {key!r} key (keys found: {found})",
                            f"add {key!r} to every record, or set {setting} to the key your data uses")
    value = record[key]
    if not isinstance(value, str):
        raise RecordInvalid("non-string value", f"{key!r} is a JSON {_json_type(value)}, not a string",
                            f"make {key!r} a string")
    return value


def _example_shape(task) -> str:
    if task.type == "chat":
        return CHAT_SHAPE
    if hasattr(task, "keys") and task.type != "completion":  # the tasks of phitune.data.task_formats
        return "{" + ", ".join(f'"{key}": ...' for key in task.keys().values()) + "}"
    if getattr(task, "text_key", None):
        keys = [task.text_key] + ([task.ground_truth_key] if task.ground_truth_key else [])
        return "{" + ", ".join(f'"{key}": "..."' for key in keys) + "}"
    return f'{{"{getattr(task, "prompt_key", "prompt")}": "...", "{getattr(task, "completion_key", "completion")}": "..."}}'


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__)

