"""Evaluate a model on held-out records: greedy generations scored by the task's registered metrics,
plus token loss / perplexity on the tokenized examples. Used before and after training
(`eval.before_after`) and by `phitune eval`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from phitune.evaluate.generation import chat_prompt_ids, generate, text_prompt_ids
from phitune.evaluate.metrics import compute_metrics, is_correct, perplexity
from phitune.evaluate.result import EvalResult


def evaluate_generations(model, tokenizer, task_type: str, records: Sequence, max_new_tokens: int,
                         batch_size: int = 16, on_batch=None) -> EvalResult:
    """Generate a reply for every record and score it against the reference (`on_batch(1)` after
    each batch of `batch_size` records)."""
    if records and getattr(records[0], "sample", None) is not None:  # a classifier head: no generation
        from phitune.evaluate.heads import evaluate_heads

        return evaluate_heads(model, tokenizer, task_type, records, batch_size=batch_size, on_batch=on_batch)
    prompts = [chat_prompt_ids(tokenizer, r.prompt_messages) if r.prompt_messages is not None
               else text_prompt_ids(tokenizer, r.prompt_text) for r in records]
    replies = generate(model, tokenizer, prompts, max_new_tokens, batch_size=batch_size, on_batch=on_batch) if prompts else []
    references = [r.reference for r in records]
    metrics: dict[str, float | None] = {"examples": len(records)} if records else {}
    if records:
        metrics.update(compute_metrics(task_type, replies, references))
    rows = [{
        "source": r.source,
        "prompt": r.prompt_messages if r.prompt_messages is not None else r.prompt_text,
        "reference": r.reference,
        "prediction": reply,
        "correct": is_correct(task_type, reply, r.reference),
    } for r, reply in zip(records, replies)]
    return EvalResult(metrics, rows)


def loss_batches(examples: Sequence, pad_id: int, batch_size: int, max_seq_len: int) -> "LossBatches":
    """Padded batches of similar-length examples for loss evaluation (order is irrelevant to a sum),
    collated when used: a large validation set is never held as tensors all at once."""
    from phitune.data import plan_batches

    lengths = examples.lengths() if hasattr(examples, "lengths") else [len(e) for e in examples]
    plan = plan_batches(lengths, batch_size, seed=0, epoch=0, group_by_length=True, packing=False,
                        max_seq_len=max_seq_len)
    return LossBatches(examples, plan, pad_id)


class LossBatches(Sequence):
    """A list of collated batches that collates each one when it is read."""

    def __init__(self, examples: Sequence, plan: list[list[int]], pad_id: int):
        self.examples, self.plan, self.pad_id = examples, plan, pad_id

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i):
        from phitune.data import collate

        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return collate([self.examples[k] for k in self.plan[i]], self.pad_id, packing=False)


def loss_metrics(model, batches: list, on_batch=None) -> dict[str, float | None]:
    """Mean token loss and perplexity over collated batches (empty dict when there are none)."""
    from phitune.models.loss import evaluate_loss

    if not batches:
        return {}
    was_training = model.training
    model.eval()
    try:
        loss, tokens = evaluate_loss(model, batches if on_batch is None else _counted(batches, on_batch))
    finally:
        model.train(was_training)
    return {"eval_loss": loss, "perplexity": perplexity(loss), "eval_tokens": tokens}


def evaluate_model(model, tokenizer, task_type: str, records: Sequence, batches: list, max_new_tokens: int,
                   progress: bool = False, desc: str = "eval", batch_size: int = 16) -> EvalResult:
    """Both halves: generation metrics on `records`, loss metrics on `batches`, under one progress bar
    (batches of generation + batches of loss) when `progress`."""
    from phitune.status import eval_bar

    total = -(-len(records) // batch_size) + len(batches)
    with eval_bar(total, desc, progress) as bar:
        result = evaluate_generations(model, tokenizer, task_type, records, max_new_tokens, batch_size, bar.update)
        result.metrics.update(loss_metrics(model, batches, bar.update))
    return result


def _counted(batches, on_batch):
    for batch in batches:
        yield batch
        on_batch(1)


def write_eval(result: EvalResult, eval_json: str | os.PathLike, extra: dict | None = None) -> tuple[Path, Path]:
    """eval.json (metrics) and, beside it, <stem>-predictions.jsonl; both replaced atomically."""
    from phitune.files import atomic_file, write_json_atomic

    eval_json = Path(eval_json)
    preds = eval_json.with_name(f"{eval_json.stem}-predictions.jsonl")
    with atomic_file(preds) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for row in result.predictions:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_json_atomic(eval_json, {**(extra or {}), "metrics": result.metrics, "predictions": str(preds.name)})
    return eval_json, preds
