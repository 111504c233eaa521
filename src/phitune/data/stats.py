"""Token-length statistics and the human-readable data report (used by `phitune data check` and the
training log). Length stats tell the user what `train.max_seq_len` to pick; padding stats show what
`train.group_by_length` / `train.packing` save.
"""

from __future__ import annotations

import math
from typing import Sequence

from phitune.data.records import DataReport, FileReport, LengthStats


def length_stats(lengths: Sequence[int]) -> LengthStats | None:
    """min / median / p95 (nearest rank) / max; None for no lengths."""
    if not lengths:
        return None
    ordered = sorted(lengths)
    n = len(ordered)
    mid = n // 2
    median = ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    p95 = ordered[max(0, math.ceil(0.95 * n) - 1)]
    return LengthStats(count=n, min=ordered[0], median=median, p95=p95, max=ordered[-1], total=sum(ordered))


def padding_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Pad tokens a right-padded (unpacked) collate adds for these batches."""
    total = 0
    for batch in batches:
        if batch:
            sizes = [lengths[i] for i in batch]
            total += max(sizes) * len(sizes) - sum(sizes)
    return total


def format_file_report(report: FileReport) -> str:
    lines = [f"{report.path} ({report.role}): {report.records} records, {report.used} usable, {report.skipped} bad"]
    if report.lengths:
        lines.append(f"  lengths: {report.lengths}")
    for reason, count in report.skipped_reasons.most_common():
        lines.append(f"  bad: {count} x {reason}")
    return "\n".join(lines)


def format_report(report: DataReport) -> str:
    """Counts and length stats per file, then the example totals (no per-record problems: those are
    listed separately so they can go to stderr)."""
    parts = [format_file_report(f) for f in report.files]
    parts.append(f"examples: {report.train_examples} train, {report.eval_examples} eval")
    return "\n".join(parts)


def distinct_fixes(report: DataReport) -> list[str]:
    """Each distinct fix once, in first-seen order: a file with 500 bad lines needs one hint, not 500."""
    seen: dict[str, None] = {}
    for problem in report.problems:
        if problem.fix:
            seen.setdefault(problem.fix, None)
    return list(seen)
