"""Log a `phitune eval` result to the recipe's tracker (MLflow unless `tracking: none`): one run per
evaluation, named `<recipe name>-eval`, with what was evaluated as params, the metrics as
`eval_<name>`, and eval.json plus the predictions file as artifacts."""

from __future__ import annotations

from pathlib import Path


def track_eval(recipe, metrics: dict, files: list[Path], params: dict) -> str | None:
    """Returns the tracking run id (None when tracking is off)."""
    from phitune.tracking import make_tracker

    run_name = f"{recipe.tracking.run_name or recipe.name}-eval"
    recipe = recipe.model_copy(update={"tracking": recipe.tracking.model_copy(update={"run_name": run_name})})
    tracker = make_tracker(recipe)
    try:
        tracker.log_params({**params, "task.type": recipe.task.type})
        tracker.log_metrics({f"eval_{k}": float(v) for k, v in metrics.items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool)}, step=0)
        for path in files:
            tracker.log_artifact(path)
    except BaseException:
        tracker.close("FAILED")
        raise
    tracker.close("FINISHED")
    return getattr(tracker, "run_id", None)
