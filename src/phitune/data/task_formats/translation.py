"""`task.type: translation` — the texts live under the language codes `source_lang` / `target_lang`
(Azure ML's keys), at the top level or, as in Hugging Face translation datasets, inside a
`translation` object. The user turn is the source text, the answer the target text."""

from __future__ import annotations

from phitune.data.task_formats.common import conversation, text
from phitune.data.task_registry import register_task

LANGUAGES = {"ar": "Arabic", "de": "German", "en": "English", "es": "Spanish", "fr": "French", "hi": "Hindi",
             "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese",
             "ru": "Russian", "sv": "Swedish", "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese"}


def language_name(code: str) -> str:
    return LANGUAGES.get(code.lower().split("_")[0].split("-")[0], code)


def instruction(task) -> str:
    return task.instruction or (f"Translate the text from {language_name(task.source_lang)} "
                                f"to {language_name(task.target_lang)}.")


@register_task("translation")
def format_translation(task, record: dict):
    holder = record
    nested = record.get("translation")
    if task.source_lang not in record and isinstance(nested, dict):
        holder = nested
    source = text(holder, task.source_lang, "task.source_lang")
    target = text(holder, task.target_lang, "task.target_lang", what="translation")
    return conversation(instruction(task), source, target)
