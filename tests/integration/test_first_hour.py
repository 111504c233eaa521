"""A new user's first hour (issue: no crash, no noise, no silent waits, outputs that travel): every
command's output is phitune's own, start-up imports only what the command uses, each run's "try it"
line works, and what a run writes explains itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLES, REPO, run_cli

LIBRARY_NOISE = ("WARNING", "Warning", "warn(", "Failed to load", "Loading weights", "Writing model shards",
                 "real_accelerator", "kernels-community", "Traceback")
HEAVY = ("deepspeed", "mlflow", "bitsandbytes", "azure")


def _cli_with_modules(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `phitune ARGS` in a fresh process; also return the modules it imported."""
    code = ("import sys\nfrom phitune.cli import main\nrc = main(sys.argv[1:])\n"
            "open(sys.argv[0] + '.modules', 'w').write('\\n'.join(k for k, v in sys.modules.items() if v is not None))\n"
            "sys.exit(rc)")  # None entries mark modules kept out on purpose (phitune.lazy_imports)
    script = cwd / "entry.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    modules = set((cwd / "entry.py.modules").read_text().split()) if (cwd / "entry.py.modules").is_file() else set()
    return proc, modules


def _own_lines(stderr: str) -> list[str]:
    """stderr without progress-bar redraws (carriage returns) and blank lines."""
    return [ln for ln in stderr.replace("\r", "\n").splitlines() if ln.strip() and "|" not in ln]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("first-hour")
    proc, modules = _cli_with_modules(["train", str(EXAMPLES / "recipes" / "tiny-lora.yaml"), "--output", str(tmp / "run"),
                                       "--set", "train.max_steps=12", "--set", "tracking=none",
                                       "--set", "eval.limit=8"], tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp / "run", proc, modules


@pytest.mark.slow
def test_train_prints_only_its_own_lines_and_imports_only_what_it_uses(demo_run):
    run, proc, modules = demo_run
    for noise in LIBRARY_NOISE:
        assert noise not in proc.stdout and noise not in proc.stderr, noise
    assert proc.stdout.startswith("training tiny-lora: lora on builtin:tiny-phi3")
    # every wait over a second says what it is waiting for (status lines on stderr)
    status = _own_lines(proc.stderr)
    assert status[:3] == ["reading data: reviews-train.jsonl, reviews-heldout.jsonl ...",
                          "loading the model: builtin:tiny-phi3 (lora) ...",
                          "evaluating before training (8 held-out records) ..."]
    assert "saving the model ..." in status
    for name in HEAVY:  # not QLoRA, not distributed, tracking off: none of these is needed
        assert not any(m == name or m.startswith(name + ".") for m in modules), name


@pytest.mark.slow
def test_run_outputs_carry_a_model_card_the_tokenizer_and_an_inference_config(demo_run):
    run, _, _ = demo_run
    card = (run / "adapter" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["base_model"] == "builtin:tiny-phi3" and meta["library_name"] == "peft"
    assert {"phitune", "lora", "chat"} <= set(meta["tags"])
    assert "| method.r | `32` |" in card and "reviews-train.jsonl" in card
    assert "| exact_match |" in card and "12 optimizer steps" in card
    assert "phitune train " in card and "tiny-lora.yaml" in card and "phitune 0.1.0" in card
    assert (run / "adapter" / "tokenizer.json").is_file() and (run / "adapter" / "tokenizer_config.json").is_file()
    merged_meta = yaml.safe_load((run / "merged" / "README.md").read_text().split("---")[1])
    assert merged_meta["library_name"] == "transformers" and merged_meta["pipeline_tag"] == "text-generation"
    assert json.loads((run / "merged" / "config.json").read_text())["use_cache"] is True


@pytest.mark.slow
def test_generate_on_the_demo_run_does_not_import_training_extras(demo_run, tmp_path):
    run, _, _ = demo_run
    proc, modules = _cli_with_modules(["generate", str(run), "--prompt", "great value", "--max-new-tokens", "4"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _own_lines(proc.stderr) == [f"loading the model: {run} ..."]
    for name in HEAVY + ("peft",):  # merged/ is a plain transformers model
        assert not any(m == name or m.startswith(name + ".") for m in modules), name


def test_validate_and_help_stay_light(tmp_path):
    proc, modules = _cli_with_modules(["validate", str(EXAMPLES / "recipes" / "tiny-lora.yaml")], tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("ok: ")
    assert "torch" not in modules and "transformers" not in modules


def test_train_help_names_every_method_the_recipe_accepts():
    from phitune.compare import _method_types

    help_text = " ".join(run_cli("--help").stdout.split()).lower()
    train_line = help_text.split(" train ", 1)[1].split(" compare ", 1)[0]
    for method in _method_types():
        spelled = {"ia3": "ia3", "prompt_tuning": "prompt", "prefix_tuning": "prefix"}.get(method, method)
        assert spelled in train_line, (method, train_line)


def test_quiet_setup_names_the_cpu_accelerator_without_importing_torch(monkeypatch):
    from phitune import process

    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    monkeypatch.setattr(process, "gpu_visible", lambda: False)
    monkeypatch.setitem(process._state, "quiet", None)
    process.quiet_libraries()
    import os

    assert os.environ["DS_ACCELERATOR"] == "cpu" and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    proc = subprocess.run([sys.executable, "-c", "from phitune.process import configure_process; configure_process(); "
                           "import peft, sys; print('torch' in sys.modules)"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # bitsandbytes' kernel notice is silenced


def test_loss_png_starts_the_eval_curve_at_the_loss_before_training(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from phitune.training.outputs import plot_loss

    drawn = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (drawn.append(self), original(self, *a, **k))[1])
    plot_loss([{"step": 1, "loss": 7.0}, {"step": 2, "loss": 5.0}], [{"step": 2, "eval_loss": 5.5}], tmp_path / "loss.png",
              before_eval_loss=7.6)
    eval_line = [ln for ln in drawn[0].axes[0].lines if ln.get_label() == "eval loss"][0]
    assert list(eval_line.get_xdata()) == [0, 2] and list(eval_line.get_ydata()) == [7.6, 5.5]
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_compare_runs_ia3_from_a_recipe_that_adapts_the_embeddings():
    from phitune.compare import plan_runs
    from phitune.recipe.load import load_recipe

    recipe = EXAMPLES / "recipes" / "tiny-lora.yaml"  # LoRA on embed_tokens too; IA3 cannot scale an embedding
    ia3 = load_recipe(recipe, overrides=plan_runs(recipe, ["ia3"], steps=2, overrides=[])["ia3"]).method
    assert "embed_tokens" not in ia3.target_modules and "lm_head" in ia3.target_modules


def test_compare_chart_has_every_methods_loss_curves_and_linear_bars():
    from phitune.compare import build_figure

    rows = [{"method": m, "trainable_params": p, "trainable_pct": 1.0, "peak_rss_mb": 700.0, "tokens_per_s": 1e4,
             "final_train_loss": 0.1, "final_eval_loss": 0.2, "train_runtime_s": 5.0}
            for m, p in (("lora", 217088), ("dora", 220928))]
    curves = {"lora": {"train": [(1, 5.0), (2, 3.0)], "eval": [(2, 3.5)]}, "dora": {"train": [(1, 5.1), (2, 2.9)], "eval": [(2, 3.4)]}}
    fig = build_figure(rows, curves)
    loss_ax, *bar_axes = [ax for ax in fig.axes if ax.get_title()]
    assert sorted(ln.get_label() for ln in loss_ax.lines) == ["dora eval", "dora train", "lora eval", "lora train"]
    for ax in bar_axes:
        assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0  # a 1.7 % difference looks like 1.7 %
    assert any(ax.tables for ax in fig.axes)  # the table beside the charts


def test_parity_checks_say_passed_failed_or_not_comparable_and_why():
    from phitune.export.parity import _summary

    row = {"max_abs_diff": 1e-6, "mean_abs_diff": 1e-7, "identical": True, "token_agreement": 1.0, "tokenizer_match": True}
    passed = _summary([row], enforce=True, atol=1e-4)
    failed = _summary([{**row, "max_abs_diff": 0.5}], enforce=True, atol=1e-4)
    int4 = _summary([{**row, "max_abs_diff": 0.83, "identical": False, "token_agreement": 0.5}], enforce=False, atol=1e-4)
    assert (passed["verdict"], failed["verdict"], int4["verdict"]) == ("passed", "failed", "not comparable")
    assert "0.5 > 0.0001" in failed["why"] and "do not use this export" in failed["conclusion"]
    assert "8.30e-01" in int4["why"] and "by design" in int4["why"] and "fp32" in int4["conclusion"]


def test_status_of_a_dry_run_folder_says_nothing_was_submitted(tmp_path):
    recipe = EXAMPLES / "recipes" / "tiny-lora.yaml"
    assert run_cli("submit", str(recipe), "--target", "local-pipeline", "--dry-run", "--output", str(tmp_path)).returncode == 0
    proc = run_cli("status", str(tmp_path))
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"DryRun: {tmp_path}") and "nothing was submitted" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("recipe,expect", [("classification-head.yaml", "label: "), ("ner-head.yaml", "entities: ")])
def test_try_it_line_of_a_head_run_works(tmp_path, recipe, expect):
    out = tmp_path / "run"
    proc = run_cli("train", str(EXAMPLES / "recipes" / recipe), "--output", str(out), "--no-progress",
                   "--set", "train.max_steps=4", "--set", "tracking=none", "--set", "eval.before_after=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    try_line = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("try it: ")][0]
    command = try_line.split("try it: ", 1)[1]
    import shlex

    argv = shlex.split(command)
    assert argv[:3] == ["phitune", "generate", str(out)]
    answer = run_cli(*argv[1:], cwd=tmp_path)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith(expect) and "%" in answer.stdout
    if expect == "label: ":  # one line per label with its probability, most likely first
        labels = json.loads((out / "resolved_recipe.json").read_text())["recipe"]["task"]["labels"]
        assert len(answer.stdout.strip().splitlines()) == 1 + len(labels)


@pytest.mark.slow
def test_local_pipeline_tracks_in_the_users_folder_and_ends_with_a_summary(tmp_path):
    out = tmp_path / "out"
    before = {p.name for p in (REPO / "src").iterdir()}
    proc = run_cli("submit", str(EXAMPLES / "recipes" / "tiny-lora.yaml"), "--target", "local-pipeline", "--output", str(out),
                   "--set", "train.max_steps=3", "--set", "eval.before_after=false", "--set", "eval.limit=4",
                   "--set", "eval.max_new_tokens=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "mlruns.db").is_file()  # where `mlflow ui` in the user's folder looks
    assert {p.name for p in (REPO / "src").iterdir()} == before  # nothing written inside the package
    assert "final train loss" in proc.stdout and "evaluation (evaluate): " in proc.stdout
    assert f"finetune.run: {out / 'run'}" in proc.stdout
    logs = run_cli("logs", str(out)).stdout
    order = [ln.split("/steps/")[1].split("/")[0] for ln in logs.splitlines() if ln.startswith("==> ")]
    assert order[:3] == ["validate_data", "finetune", "evaluate"]


@pytest.mark.slow
def test_a_first_mlflow_run_in_a_new_folder_prints_nothing_of_mlflows(tmp_path):
    """The first run in a folder creates its MLflow store; mlflow announces that at INFO level."""
    proc = run_cli("train", str(EXAMPLES / "recipes" / "tiny-lora.yaml"), "--output", str(tmp_path / "run"), "--no-progress",
                   "--set", "train.max_steps=2", "--set", "eval.before_after=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mlruns.db").is_file()
    assert "mlflow" not in proc.stderr.lower() and "INFO" not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_submit_target_local_prints_the_train_summary(tmp_path):
    proc = run_cli("submit", str(EXAMPLES / "recipes" / "tiny-lora.yaml"), "--target", "local", "--output", str(tmp_path / "run"),
                   "--set", "train.max_steps=3", "--set", "tracking=none", "--set", "eval.limit=4",
                   "--set", "eval.max_new_tokens=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for part in ("final train loss", "held-out evaluation", "before", "->  after", "try it: phitune generate"):
        assert part in proc.stdout, part
