"""Translation: corpus BLEU and chrF from sacrebleu (its default tokenisation and settings, so the
numbers are comparable with published ones), both on a 0-100 scale."""

from __future__ import annotations

from phitune.evaluate.metric_registry import register_metric


def bleu_chrf(predictions: list[str], references: list[str]) -> dict[str, float]:
    if not references:
        return {"bleu": float("nan"), "chrf": float("nan")}
    try:
        import sacrebleu
    except ImportError:
        from phitune.errors import Problem, TrainError

        raise TrainError("translation metrics need sacrebleu", [Problem(
            "task.type", "BLEU and chrF are computed with sacrebleu", "pip install 'phitune[tasks]'")]) from None
    return {"bleu": sacrebleu.corpus_bleu(predictions, [references]).score,
            "chrf": sacrebleu.corpus_chrf(predictions, [references]).score}


register_metric("translation", "bleu_chrf")(bleu_chrf)
