"""`phitune train / generate / eval` as a user runs them (real CLI in a subprocess): summaries,
MLflow tracking, and bad input reported as field paths or FILE:LINE with exit 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from test_train_methods import small_data


def write_recipe(tmp_path: Path, **sections) -> Path:
    train_file, heldout = small_data(tmp_path, n_train=24, n_eval=6)
    body = {
        "name": "cli-run", "model": "builtin:tiny-phi3", "data": {"train": train_file, "validation": heldout},
        "method": {"type": "lora", "r": 4, "alpha": 8}, "output": {"merge": True},
        "train": {"max_steps": 4, "batch_size": 8, "lr": 1e-2, "max_seq_len": 128, "eval_every": 2},
        "eval": {"before_after": True, "max_new_tokens": 4}, "tracking": {"experiment": "cli-test"},
    }
    for key, value in sections.items():
        body[key] = {**body[key], **value} if isinstance(value, dict) and isinstance(body.get(key), dict) else value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One `phitune train` run tracked to a private sqlite MLflow store."""
    tmp = tmp_path_factory.mktemp("cli")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    recipe = write_recipe(tmp)
    proc = run_cli("train", str(recipe), "--output", str(tmp / "run"), "--no-progress", cwd=tmp,
                   env={"MLFLOW_TRACKING_URI": uri})
    return tmp, uri, proc


@pytest.mark.slow
def test_train_prints_a_summary_and_tracks_to_mlflow(cli_run):
    from mlflow.tracking import MlflowClient

    tmp, uri, proc = cli_run
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "final train loss" in out and "tokens/s" in out and "exact_match" in out
    assert "before" in out and "after" in out and str(tmp / "run") in out and "MLflow run" in out
    run = tmp / "run"
    for name in ("adapter", "merged", "tokenizer", "metrics.json", "loss.png", "resolved_recipe.json"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["eval_before"]["examples"] == 6 and "exact_match" in metrics["eval_after"]
    assert not (tmp / "mlruns.db").exists()  # MLFLOW_TRACKING_URI wins over the local default

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("cli-test")
    (mlrun,) = client.search_runs([exp.experiment_id])
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["train.lr"] == "0.01" and mlrun.data.params["method.type"] == "lora"
    assert mlrun.data.metrics["final_train_loss"] == pytest.approx(metrics["final_train_loss"])
    assert len(client.get_metric_history(mlrun.info.run_id, "train_loss")) == 4
    assert [m.step for m in client.get_metric_history(mlrun.info.run_id, "eval_loss")] == [2, 4]
    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"metrics.json", "loss.png", "resolved_recipe.json"} <= artifacts


@pytest.mark.slow
def test_generate_and_eval_on_the_run_folder(cli_run):
    tmp, _, proc = cli_run
    assert proc.returncode == 0, proc.stderr
    gen = run_cli("generate", str(tmp / "run"), "--prompt", "Review: The battery is excellent.",
                  "--system", "Label the sentiment of the review as positive or negative.", "--max-new-tokens", "4")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.strip() and "Traceback" not in gen.stderr

    data = tmp / "heldout.jsonl"
    ev = run_cli("eval", str(tmp / "run"), "--data", str(data), "--limit", "4", "--output", str(tmp / "e" / "eval.json"))
    assert ev.returncode == 0, ev.stderr
    body = json.loads((tmp / "e" / "eval.json").read_text())
    assert body["metrics"]["examples"] == 4 and "exact_match" in body["metrics"]
    assert body["metrics"]["perplexity"] > 1 and body["metrics"]["eval_loss"] > 0
    rows = [json.loads(line) for line in (tmp / "e" / "eval-predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and set(rows[0]) == {"source", "prompt", "reference", "prediction", "correct"}
    assert rows[0]["source"].endswith("heldout.jsonl:1")
    assert body["metrics"]["exact_match"] == sum(r["correct"] for r in rows) / 4

    merged = run_cli("eval", str(tmp / "run" / "merged"), "--data", str(data), "--limit", "2", cwd=tmp)
    assert merged.returncode == 0, merged.stderr
    assert (tmp / "eval.json").is_file()


def test_bad_recipe_exits_2_with_the_field_path(tmp_path):
    recipe = write_recipe(tmp_path, train={"lr": -1, "epochz": 2})
    proc = run_cli("train", str(recipe), "--output", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert "train.lr" in proc.stderr and "train.epochz" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_bad_data_exits_2_with_file_and_line(tmp_path):
    recipe = write_recipe(tmp_path, tracking="none")
    train_file = tmp_path / "train.jsonl"
    lines = train_file.read_text().splitlines()
    lines[2] = '{"messages": [{"role": "user", "content": "no answer"}]}'
    train_file.write_text("\n".join(lines) + "\n")
    proc = run_cli("train", str(recipe), "--output", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert f"{train_file}:3" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_resume_without_checkpoint_and_missing_model_folder_exit_2(tmp_path):
    recipe = write_recipe(tmp_path, tracking="none")
    proc = run_cli("train", str(recipe), "--output", str(tmp_path / "run"), "--resume")
    assert proc.returncode == 2 and "nothing to resume" in proc.stderr and "Traceback" not in proc.stderr
    gen = run_cli("generate", str(tmp_path / "nope"), "--prompt", "hi")
    assert gen.returncode == 2 and "no such run or model folder" in gen.stderr and "Traceback" not in gen.stderr
