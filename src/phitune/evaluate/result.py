"""What an evaluation returns: the scores, and one prediction row per record. Both ways of evaluating
(generation, phitune.evaluate.run; classifier heads, phitune.evaluate.heads) build one."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalResult:
    """Scores for one evaluation, and one prediction row per record."""

    metrics: dict[str, float | None]
    predictions: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        for key, value in self.metrics.items():
            if isinstance(value, float):
                parts.append(f"{key} {value:.1%}" if key == "exact_match" else f"{key} {value:.4g}")
            elif value is not None:
                parts.append(f"{key} {value}")
        return ", ".join(parts)
