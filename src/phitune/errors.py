"""Typed errors. Library code raises these; only the CLI turns them into a message and exit code 2.

Every error carries one or more `Problem`s, each with a location (a recipe field path such as
`train.lr`, a `FILE:LINE`, or a YAML key) and, where we know one, a fix.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    location: str
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        if self.fix:
            text += f"\n    fix: {self.fix}"
        return text


class PhituneError(Exception):
    """Base of every error a user can cause. `str(err)` is the complete user-facing message."""

    exit_code = 2

    def __init__(self, summary: str, problems: list[Problem] | None = None):
        self.summary = summary
        self.problems = list(problems or [])
        super().__init__(self.render())

    def render(self) -> str:
        """The message, secrets redacted (a failing SAS data URL is named with `sig=REDACTED`)."""
        from phitune.redact import redact

        if not self.problems:
            return redact(self.summary)
        lines = [f"{self.summary} ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}):"]
        lines += [f"  - {str(p)}" for p in self.problems]
        return redact("\n".join(lines))


class RecipeError(PhituneError):
    """The recipe (YAML, overrides or resolved JSON) is invalid."""


class DataError(PhituneError):
    """A data file is unreadable or has bad records; locations are FILE:LINE."""


class ModelError(PhituneError):
    """The base model or tokenizer cannot be found or loaded."""


class TrainError(PhituneError):
    """Training cannot start or continue (e.g. nothing to resume from)."""


class TrainingInterrupted(PhituneError):
    """Ctrl-C or SIGTERM stopped training (exit code 130 or 143). The message says where the newest
    checkpoint to resume from is: usually one saved at the step it stopped after; a DeepSpeed run
    stopped by one rank alone keeps only its last `train.save_every` checkpoint, or has none."""

    exit_code = 130


class SubmitError(PhituneError):
    """A target refused the recipe, or Azure refused the request (carries Azure's error code)."""


class ExportError(PhituneError):
    """Export failed or its parity check did not hold."""


class LintError(PhituneError):
    """Azure ML YAML problems found by `phitune lint`; locations are FILE:LINE: key."""
