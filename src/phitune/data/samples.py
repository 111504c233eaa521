"""The two sample shapes every task maps onto; templating tokenizes and masks them.

- `ChatSample`: messages; the assistant turns are learned (chat, and e.g. classification or
  summarization rendered as a user question + assistant answer).
- `TextSample`: a prompt (never learned) and an answer (learned, followed by EOS); plain text is an
  empty prompt.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatSample:
    messages: list[dict]  # validated: only role + content, roles in ROLES, ends with an assistant turn


@dataclass(frozen=True)
class TextSample:
    prompt: str  # not learned ("" for plain text)
    answer: str  # learned, and so is the EOS appended after it


Sample = ChatSample | TextSample
