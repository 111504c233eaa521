"""`task.type: qa` — `question_key`, `context_key`, `answer_key`: answers grounded in the context.

The user turn is the context then the question; the answer (the first one, when several are given)
is learned and is the evaluation reference. Answers may be a string, a list of strings, or
SQuAD's `{"text": [...], "answer_start": [...]}`.
"""

from __future__ import annotations

from typing import Any

from phitune.data.records import RecordInvalid
from phitune.data.task_formats.common import conversation, json_type, require, text
from phitune.data.task_registry import register_task

DEFAULT_INSTRUCTION = "Answer the question using only the context. Answer with a short span copied from the context."


def user_turn(context: str, question: str) -> str:
    return f"Context: {context}\nQuestion: {question}"


def first_answer(value: Any, key: str) -> str:
    if isinstance(value, dict):
        if "text" not in value:
            raise RecordInvalid("bad answer", f"{key!r} is an object without 'text'",
                                'use a string, a list of strings, or {"text": [...], "answer_start": [...]}')
        value = value["text"]
    if isinstance(value, (list, tuple)):
        answers = [a for a in value if isinstance(a, str) and a.strip()]
        if not answers:
            raise RecordInvalid("empty answer", f"{key!r} holds no non-empty answer",
                                "give the answer text (unanswerable questions cannot be learned here: drop them)")
        return answers[0].strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise RecordInvalid("bad answer", f"{key!r} is a JSON {json_type(value)}, not an answer",
                            "use a string, a list of strings, or SQuAD's answers object")
    if not value.strip():
        raise RecordInvalid("empty answer", f"{key!r} is empty", "give the answer text, or drop the record")
    return value.strip()


@register_task("qa")
def format_qa(task, record: dict):
    question = text(record, task.question_key, "task.question_key", what="question")
    context = text(record, task.context_key, "task.context_key", what="context")
    answer = first_answer(require(record, task.answer_key, "task.answer_key"), task.answer_key)
    return conversation(task.instruction or DEFAULT_INSTRUCTION, user_turn(context, question), answer)
