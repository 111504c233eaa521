"""What a target did, as data: its messages (the summary of what it sends, notes, a local pipeline's
step commands and outcome), the files it wrote, and the run handle. Nothing under targets/ prints:
`phitune submit` passes a `progress` callback that prints each message as it happens (a summary
before the job is sent, a step's command before the step runs); a library caller reads
`Submission.messages` afterwards, or passes its own callback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# Called with each message while a target works (one or more lines, no trailing newline).
Progress = Callable[[str], None]


@dataclass
class Submission:
    """A submitted (or dry-run, or finished local) run: the handle and everything the target reported."""

    handle: object  # a phitune.targets.base.RunHandle
    messages: list[str] = field(default_factory=list)  # in the order they were reported
    notes: list[str] = field(default_factory=list)  # the notes and warnings among them, as plain text
    files: dict[str, Path] = field(default_factory=dict)  # what was written: "job.yml", "request.json", ...


class SubmitLog:
    """Collects a target's messages, notes and files while it works; `progress` sees each message at once."""

    def __init__(self, progress: Progress | None = None):
        self.progress = progress
        self.messages: list[str] = []
        self.notes: list[str] = []
        self.files: dict[str, Path] = {}

    def say(self, text: str) -> None:
        self.messages.append(text)
        if self.progress is not None:
            self.progress(text)

    def note(self, note: str) -> None:
        """Record a note or warning (shown as part of a message the caller says)."""
        self.notes.append(note)

    def wrote(self, path: Path) -> Path:
        self.files[Path(path).name] = Path(path)
        return path

    def done(self, handle) -> Submission:
        return Submission(handle, list(self.messages), list(self.notes), dict(self.files))
