"""The layout of a finished run folder, and loading a run (or any model folder) for inference.

RUN_DIR/
  resolved_recipe.json   the exact recipe that ran (written first)
  tokenizer/             tokenizer with its chat template
  adapter/               adapter methods: PeftModel.save_pretrained (loads with peft.PeftModel.from_pretrained)
  model/                 full fine-tuning: the whole model (safetensors) + tokenizer
  merged/                output.merge with an adapter method: base + adapter folded together, + tokenizer
  metrics.json           written last: its presence means the run completed
  loss.png, eval.json, checkpoints/step-N/

Every reader (generate, eval, export, serve, deploy, compare) calls `require_finished_run` first: a
run folder without metrics.json (killed, interrupted, still training, or only checkpoints) is
refused with the command that resumes it, instead of being used as if it were a finished model.
"""

from __future__ import annotations

from pathlib import Path

from phitune.errors import ModelError, Problem

RESOLVED = "resolved_recipe.json"
TOKENIZER = "tokenizer"
ADAPTER = "adapter"
FULL_MODEL = "model"
MERGED = "merged"
METRICS = "metrics.json"
CHECKPOINTS = "checkpoints"


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / RESOLVED).is_file()


def is_unfinished_run(path: str | Path) -> bool:
    """A folder `phitune train` started (its recipe or checkpoints are there) but did not finish."""
    path = Path(path)
    started = (path / RESOLVED).is_file() or (path / CHECKPOINTS).is_dir()
    return path.is_dir() and started and not (path / METRICS).is_file()


def require_finished_run(path: str | Path, error=ModelError) -> None:
    """Raise `error` (exit 2) when `path` is an unfinished run (see `is_unfinished_run`)."""
    path = Path(path)
    if not is_unfinished_run(path):
        return
    recipe = path / RESOLVED if (path / RESOLVED).is_file() else "RECIPE"
    checkpoints = sorted(p.name for p in (path / CHECKPOINTS).glob("step-*")) if (path / CHECKPOINTS).is_dir() else []
    why = (f"no {METRICS} (training did not complete; last checkpoint {checkpoints[-1]})" if checkpoints
           else f"no {METRICS} (training did not complete)")
    raise error(f"unfinished run: resume with phitune train {recipe} --output {path} --resume",
                [Problem(str(path), why, f"phitune train {recipe} --output {path} --resume"
                         + ("" if checkpoints else "  (no checkpoint: run without --resume to start again)"))])


def run_recipe(path: str | Path):
    from phitune.recipe.load import load_recipe

    return load_recipe(Path(path) / RESOLVED)


def load_for_inference(path: str | Path, prefer_merged: bool = True):
    """(model, tokenizer) in eval mode from a run folder or a plain Hugging Face model folder.

    A run folder gives merged/ (if present and preferred), else model/, else base + adapter/.
    """
    from transformers import AutoTokenizer

    from phitune.models.heads import auto_class_for_folder
    from phitune.recipe.task import uses_head

    path = Path(path)
    if not path.exists():
        raise ModelError(f"no such run or model folder: {path}", [Problem(str(path), "does not exist")])
    require_finished_run(path)
    if not is_run_dir(path):
        if not (path / "config.json").is_file():
            raise ModelError(
                f"{path} is neither a phitune run nor a model folder",
                [Problem(str(path), f"no {RESOLVED} and no config.json", "pass a run folder written by `phitune train`")],
            )
        model = auto_class_for_folder(path).from_pretrained(path, use_safetensors=True)
        return model.eval(), AutoTokenizer.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path / TOKENIZER)
    for folder in ([MERGED] if prefer_merged else []) + [FULL_MODEL]:
        if (path / folder / "config.json").is_file():
            model = auto_class_for_folder(path / folder).from_pretrained(path / folder, use_safetensors=True)
            return model.eval(), tokenizer
    if (path / ADAPTER / "adapter_config.json").is_file():
        from peft import PeftModel

        from phitune.models.loader import load_base_model

        recipe = run_recipe(path)
        if uses_head(recipe.task):  # the adapter holds the trained head (modules_to_save)
            from phitune.models.heads import load_head_base

            base = load_head_base(recipe)
        else:
            base = load_base_model(recipe.model)
        model = PeftModel.from_pretrained(base, path / ADAPTER)
        return model.eval(), tokenizer
    raise ModelError(
        f"run {path} has no model to load",
        [Problem(str(path), f"no {MERGED}/, {FULL_MODEL}/ or {ADAPTER}/ folder", "the run may not have finished; try --resume")],
    )
