"""Evaluate a classifier-head model (`task.head: classifier`): the predicted class (or per-word tags)
is the argmax of the head, turned into the same text a generative model would write — the label
name, or the canonical entity text — so the task's registered metrics score both modes alike.
"""

from __future__ import annotations

from typing import Sequence

from phitune.data.entities import format_entities
from phitune.data.heads import SequenceLabelSample, encode_head_samples
from phitune.data.records import IGNORE_INDEX, Example, RecordInvalid
from phitune.evaluate.metrics import compute_metrics, is_correct
from phitune.evaluate.result import EvalResult
from phitune.models import base_of


def evaluate_heads(model, tokenizer, task_type: str, records: Sequence, batch_size: int = 16,
                   on_batch=None) -> EvalResult:
    """One prediction per HeadEvalRecord, scored with `task_type`'s metrics (an EvalResult)."""
    names = id2label(model)
    samples = [r.sample for r in records]
    replies = predict(model, tokenizer, samples, names, batch_size, on_batch)
    references = [r.reference for r in records]
    metrics: dict = {"examples": len(records)} if records else {}
    if records:
        metrics.update(compute_metrics(task_type, replies, references))
    rows = [{"source": r.source, "prompt": r.prompt_messages, "reference": r.reference, "prediction": reply,
             "correct": is_correct(task_type, reply, r.reference)} for r, reply in zip(records, replies)]
    return EvalResult(metrics, rows)


def predict(model, tokenizer, samples: list, names: list[str], batch_size: int = 16, on_batch=None) -> list[str]:
    """Label names (sequence samples) or canonical entity texts (word samples), in order."""
    import torch

    from phitune.data.batching import collate

    encoded = encode_head_samples(tokenizer, [("", s) for s in samples])
    bad = next((e for e in encoded if isinstance(e, RecordInvalid)), None)
    if bad is not None:
        from phitune.errors import DataError, Problem

        raise DataError("an evaluation record cannot be encoded", [Problem("data", bad.message, bad.fix)])
    examples = [Example(ids, labels, "") for ids, labels in encoded]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[str] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(examples), batch_size):
                chunk = examples[start:start + batch_size]
                batch = collate(chunk, pad_id, packing=False)
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                for row, sample in enumerate(samples[start:start + batch_size]):
                    if isinstance(sample, SequenceLabelSample):
                        out.append(names[int(logits[row].argmax())])
                    else:
                        positions = (batch["labels"][row] != IGNORE_INDEX).nonzero().flatten()
                        tags = [names[int(i)] for i in logits[row, positions].argmax(-1)]
                        out.append(format_entities(sample.words, tags))
                if on_batch is not None:
                    on_batch(1)
    finally:
        model.train(was_training)
    return out


def id2label(model) -> list[str]:
    """The head's label names in id order, from the model config (set from task.labels at build)."""
    config = base_of(model).config
    mapping = getattr(config, "id2label", None) or {}
    return [mapping[i] if i in mapping else mapping.get(str(i), str(i)) for i in range(config.num_labels)]


def answer_with_head(model, tokenizer, task, text: str) -> str:
    """What `phitune generate` prints for a classifier-head run: the predicted label with every label's
    probability (sequence classification), or each word with its tag and the entities found (token
    classification). `text` goes through the task's own formatter, so the prompt is the one the head
    was trained on; for a sentence pair, separate the two sentences with a newline."""
    import torch

    from phitune.data.tasks import format_record

    names = id2label(model)
    if task.type == "ner":
        words = text.split()
        record = {task.token_key: words, task.tag_key: ["O"] * len(words)}
    else:
        first, _, second = text.partition("\n")
        record = {task.sentence1_key: first.strip(), task.label_key: names[0]}
        if task.sentence2_key:
            record[task.sentence2_key] = second.strip()
    sample = format_record(task, record)
    encoded = encode_head_samples(tokenizer, [("--prompt", sample)])[0]
    if isinstance(encoded, RecordInvalid):
        from phitune.errors import DataError, Problem

        raise DataError("the prompt cannot be classified", [Problem("--prompt", encoded.message, encoded.fix)])
    ids, labels = encoded
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits[0]
    if task.type != "ner":
        probs = torch.softmax(logits.float(), dim=-1).tolist()
        ranked = sorted(zip(names, probs), key=lambda kv: -kv[1])
        return "\n".join([f"label: {ranked[0][0]}"] + [f"  {name:<16} {p:.1%}" for name, p in ranked])
    positions = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
    probs = torch.softmax(logits[positions].float(), dim=-1)
    tags = [names[int(i)] for i in probs.argmax(-1)]
    lines = [f"entities: {format_entities(words, tags)}"]
    lines += [f"  {word:<16} {tag:<8} {float(p.max()):.1%}" for word, tag, p in zip(words, tags, probs)]
    return "\n".join(lines)
