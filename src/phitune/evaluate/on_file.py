"""`phitune eval`: evaluate a run folder (or a plain model folder) on a data file.

The file is read through the same data pipeline as training (a recipe whose validation data is the
file), so records are checked, templated and masked exactly as in training, and bad records are
reported as FILE:LINE.
"""

from __future__ import annotations

import os
from pathlib import Path

from phitune.evaluate.result import EvalResult
from phitune.evaluate.run import evaluate_model, loss_batches, write_eval


def evaluate_on_file(model_path: str | os.PathLike, data: str | os.PathLike, *, limit: int | None = None,
                     output: str | os.PathLike | None = None, task_type: str | None = None,
                     max_new_tokens: int | None = None, progress: bool = False) -> tuple[EvalResult, Path, Path]:
    """Metrics of the recipe's task (or `task_type` for a plain model folder) on `data`; writes
    eval.json and eval-predictions.jsonl. Returns (result, eval.json path, predictions path)."""
    from phitune.data import load_eval_records, load_examples
    from phitune.errors import DataError, Problem
    from phitune.models.run_dir import is_run_dir, load_for_inference, run_recipe

    model_path = Path(model_path)
    data_path = Path(data)
    if not data_path.is_file():
        raise DataError(f"data file not found: {data}", [Problem(str(data), "no such file", "check --data")])
    from phitune.status import status

    status(f"loading the model: {model_path}")
    model, tokenizer = load_for_inference(model_path)
    recipe = _eval_recipe(run_recipe(model_path) if is_run_dir(model_path) else None, data_path, limit, task_type,
                          max_new_tokens)
    status(f"reading data: {data_path.name}")
    _, examples, _ = load_examples(recipe, tokenizer)
    records = load_eval_records(recipe)
    if limit:
        examples = examples[:limit]
    batches = loss_batches(examples, tokenizer.pad_token_id, recipe.train.batch_size, recipe.train.max_seq_len)
    status(f"evaluating {len(records)} records")
    result = evaluate_model(model, tokenizer, recipe.task.type, records, batches, recipe.eval.max_new_tokens,
                            progress=progress)
    if output is None:
        output = model_path / "eval.json" if is_run_dir(model_path) else Path("eval.json")
    eval_json, preds = write_eval(result, output, extra={
        "model": str(model_path), "data": str(data_path), "task": recipe.task.type, "limit": limit})
    from phitune.evaluate.track import track_eval

    track_eval(recipe, result.metrics, [eval_json, preds], {"model": str(model_path), "data": str(data_path)})
    return result, eval_json, preds


def _eval_recipe(base, data: Path, limit: int | None, task_type: str | None, max_new_tokens: int | None):
    """The run's recipe (or a default one) pointed at `data` as validation data."""
    from phitune.recipe.schema import Recipe

    raw = base.to_dict() if base is not None else {}
    if task_type and (base is None or base.task.type != task_type):
        raw["task"] = {"type": task_type}
    path = str(data.resolve())
    raw["data"] = {**raw.get("data", {}), "train": path, "validation": path, "validation_split": None}
    raw["eval"] = {**raw.get("eval", {}), "limit": limit}
    if max_new_tokens:
        raw["eval"]["max_new_tokens"] = max_new_tokens
    return Recipe.model_validate(raw)
