"""`task:` — what the data looks like and what is learned. A union discriminated on `type`.

Keys are named like Azure ML's own fine-tuning components so users can reuse their data.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from phitune.recipe.base import Section


class ChatTask(Section):
    """Chat JSONL: `{"messages": [{"role": ..., "content": ...}, ...]}`; loss on assistant turns only."""

    type: Literal["chat"] = "chat"
    messages_key: str = "messages"


class CompletionTask(Section):
    """Prompt/completion JSONL (loss on the completion only), or a plain `text_key` column for
    domain adaptation and creative generation (loss on all of it)."""

    type: Literal["completion"] = "completion"
    prompt_key: str = "prompt"
    completion_key: str = "completion"
    text_key: str | None = Field(None, description="When set, records hold plain text and every token is learned.")

    @model_validator(mode="after")
    def _keys_differ(self) -> "CompletionTask":
        if self.text_key is None and self.prompt_key == self.completion_key:
            raise ValueError("task.prompt_key and task.completion_key must name different keys")
        return self


TaskSpec = Annotated[Union[ChatTask, CompletionTask], Field(discriminator="type")]
