"""The data objects the rest of phitune sees: tokenized `Example`s for training, `EvalRecord`s for
generation-based evaluation, and the `DataReport` that says what was read, used and skipped (and why),
with each file's `LengthStats`.

Everything here is plain stdlib so `phitune.data` imports without torch or transformers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from phitune.errors import Problem

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy (and every HF model) skips


@dataclass(frozen=True)
class Example:
    """One tokenized training example. `labels` has the length of `input_ids` and holds -100 on every
    token that must not be learned (system/user turns, template tokens, the prompt)."""

    input_ids: list[int]
    labels: list[int]
    source: str  # "FILE:LINE", so a loss spike or a bad generation can be traced to its record

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def learned_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


@dataclass(frozen=True)
class EvalRecord:
    """A held-out record for generation-based evaluation: the model is given the prompt and its
    output is compared with `reference`. Exactly one of `prompt_messages` / `prompt_text` is set."""

    prompt_messages: list[dict] | None  # chat: every message before the final assistant turn
    prompt_text: str | None  # completion: the prompt text
    reference: str  # chat: the final assistant content; completion: the completion
    source: str


@dataclass(frozen=True)
class BadRecord:
    """A record that cannot be used. `kind` is a short, stable reason (it is what the report counts);
    `message` is the specific explanation shown next to FILE:LINE."""

    location: str
    kind: str
    message: str
    fix: str | None = None

    def problem(self) -> Problem:
        return Problem(self.location, self.message, self.fix)


class RecordInvalid(Exception):
    """Raised by task formatters and templating for one record; the loader turns it into a `BadRecord`
    (it never escapes `phitune.data`)."""

    def __init__(self, kind: str, message: str, fix: str | None = None):
        super().__init__(message)
        self.kind, self.message, self.fix = kind, message, fix

    def at(self, location: str) -> BadRecord:
        return BadRecord(location, self.kind, self.message, self.fix)


@dataclass(frozen=True)
class LengthStats:
    """Token lengths of one file's records (phitune.data.stats.length_stats computes them)."""

    count: int
    min: int
    median: float
    p95: int
    max: int
    total: int

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        median = f"{self.median:g}"
        return f"min {self.min} / median {median} / p95 {self.p95} / max {self.max} tokens"


@dataclass
class FileReport:
    """What happened to one data file. `lengths` covers every record that could be tokenized
    (including ones over max_seq_len, so the report shows how long they were)."""

    path: str
    role: str  # "train", "validation", or "train+validation" for a validation_split
    records: int = 0
    used: int = 0
    skipped: int = 0
    skipped_reasons: Counter = field(default_factory=Counter)
    lengths: LengthStats | None = None
    problems: list[Problem] = field(default_factory=list)  # from the data cache: the first few (`skipped` counts all)
    content_hash: str | None = None  # of the file's bytes, when read through the data cache
    cache_key: str | None = None  # its folder under $PHITUNE_CACHE/data/

    def add_bad(self, bad: list[BadRecord]) -> None:
        self.skipped += len(bad)
        self.skipped_reasons.update(b.kind for b in bad)
        self.problems.extend(b.problem() for b in bad)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "role": self.role,
            "records": self.records,
            "used": self.used,
            "skipped": self.skipped,
            "skipped_reasons": dict(self.skipped_reasons),
            "lengths": self.lengths.to_dict() if self.lengths else None,
            "problems": [str(p) for p in self.problems],
            "content_hash": self.content_hash,
        }


@dataclass
class DataReport:
    """Per-file reports plus the number of train and eval examples that came out."""

    files: list[FileReport] = field(default_factory=list)
    train_examples: int = 0
    eval_examples: int = 0

    @property
    def problems(self) -> list[Problem]:
        return [p for f in self.files for p in f.problems]

    @property
    def clean(self) -> bool:
        return not any(f.skipped for f in self.files)

    def to_dict(self) -> dict:
        return {
            "train_examples": self.train_examples,
            "eval_examples": self.eval_examples,
            "files": [f.to_dict() for f in self.files],
        }
