"""End to end per task: the example recipe (shortened) trains the tiny model and the task's metric on
held-out data improves over the untrained model; a head run reloads for `phitune eval`, which
writes eval.json, the predictions file and an MLflow run."""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES, run_cli

from phitune.recipe import load_recipe
from phitune.training.run import train

# task recipe -> (optimizer steps, metric, minimum gain over the untrained model). Steps are far
# fewer than the example recipes train (tests must stay fast); gains are about half those measured.
CASES = {
    "chat": (40, "exact_match", 0.3),
    "completion": (20, "perplexity", None),  # perplexity must fall at least 10x
    "classification": (40, "accuracy", 0.3),
    "classification-head": (60, "accuracy", 0.15),
    "ner": (160, "entity_f1", 0.2),
    "ner-head": (40, "entity_f1", 0.1),
    "qa": (100, "token_f1", 0.3),
    "translation": (60, "chrf", 20.0),
    "summarization": (40, "rouge_l", 0.25),
}


def _recipe(name: str, model_dir, *overrides: str):
    return load_recipe(EXAMPLES / "recipes" / f"{name}.yaml",
                       overrides=[f"model.name={model_dir}", "eval.limit=24", *overrides])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_training_improves_the_task_metric(name, tmp_path, tiny_model_dir):
    steps, metric, gain = CASES[name]
    result = train(_recipe(name, tiny_model_dir, "tracking=none", f"train.max_steps={steps}"), tmp_path / "run",
                   progress=False)
    before, after = result.eval_before[metric], result.eval_after[metric]
    print(f"{name}: {metric} {before:.4g} -> {after:.4g} in {steps} steps")  # shown with pytest -s
    if gain is None:
        assert after < before / 10, (before, after)
    else:
        assert after >= before + gain, (before, after, result.eval_after.get("samples"))


@pytest.mark.slow
def test_head_run_reloads_for_eval_and_logs_to_mlflow(tmp_path, tiny_model_dir, mlflow_uri):
    import torch
    from mlflow.tracking import MlflowClient

    from phitune.evaluate.on_file import evaluate_on_file
    from phitune.models.run_dir import load_for_inference

    run_dir = tmp_path / "run"
    result = train(_recipe("ner-head", tiny_model_dir, "train.max_steps=30", "tracking.experiment=tasks-test",
                           "output.merge=true"), run_dir, progress=False)
    saved = json.loads((run_dir / "resolved_recipe.json").read_text())["recipe"]["task"]
    assert saved["labels"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"] and saved["head"] == "classifier"

    heldout = EXAMPLES / "data" / "ner-heldout.jsonl"
    evaluated, eval_json, preds = evaluate_on_file(run_dir, heldout, limit=24)
    # merged/ (what eval loads) and base + adapter/ (with the saved `score` head) are the same token classifier
    merged, tokenizer = load_for_inference(run_dir)
    adapted, _ = load_for_inference(run_dir, prefer_merged=False)
    ids = tokenizer("the doctor went to the red city", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, adapted(input_ids=ids).logits, atol=1e-5)
    # and the reloaded model scores exactly as at the end of training
    for key in ("entity_precision", "entity_recall", "entity_f1"):
        assert evaluated.metrics[key] == pytest.approx(result.eval_after[key])
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(rows) == 24 and rows[0]["source"] == f"{heldout.resolve()}:1"
    assert json.loads(eval_json.read_text())["metrics"]["entity_f1"] == pytest.approx(evaluated.metrics["entity_f1"])

    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("tasks-test")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert runs["ner-head"].data.metrics["after_entity_f1"] == pytest.approx(result.eval_after["entity_f1"])
    eval_run = runs["ner-head-eval"]
    assert eval_run.data.metrics["eval_entity_f1"] == pytest.approx(evaluated.metrics["entity_f1"])
    assert {a.path for a in client.list_artifacts(eval_run.info.run_id)} == {eval_json.name, preds.name}


@pytest.mark.slow
def test_eval_cli_on_a_generative_run(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    train(_recipe("translation", tiny_model_dir, "tracking=none", "train.max_steps=5"), run_dir, progress=False)
    out = tmp_path / "metrics" / "eval.json"
    cli = run_cli("eval", str(run_dir), "--data", str(EXAMPLES / "data" / "translation-heldout.jsonl"),
                  "--limit", "8", "--output", str(out))
    assert cli.returncode == 0, cli.stderr
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["examples"] == 8 and {"bleu", "chrf", "perplexity"} <= set(metrics)
    assert (out.parent / "eval-predictions.jsonl").is_file() and "chrf" in cli.stdout
