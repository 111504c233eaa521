"""Model cards: a `README.md` with Hugging Face model-card metadata beside every model phitune writes
(run folders' adapter/, model/ and merged/, and ONNX exports), so an output folder explains itself
when it is copied, uploaded to a hub or registered: which base, which method and settings, which data,
how long it trained, the before/after metrics, the exact command and the phitune version.

The metadata block is the YAML front matter the Hugging Face hub reads (`base_model`, `library_name`,
`tags`, `datasets`, `license`, `pipeline_tag`); keys phitune cannot know are left out rather than guessed.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

CARD = "README.md"


_command: dict = {"argv": None}


def record_command(argv: list[str]) -> None:
    """Called by the CLI with its arguments: the command a model card shows."""
    _command["argv"] = ["phitune", *argv]


def run_command() -> str:
    """The command line that is running, as a user would type it (the Python API when not the CLI)."""
    if _command["argv"]:
        return shlex.join(_command["argv"])
    argv = list(sys.argv)
    if argv and (Path(argv[0]).name == "phitune" or argv[0].endswith(("phitune/cli.py", "phitune/__main__.py"))):
        return shlex.join(["phitune", *argv[1:]])
    if argv and argv[0] == "-m":
        return shlex.join(["python", "-m", *argv[1:]])
    return "phitune.train(recipe, output_dir)  (Python API)"


def base_license(model_name: str) -> str | None:
    """The base model's license from its own model card's front matter, when it is a local folder."""
    card = Path(model_name) / CARD
    if not card.is_file():
        return None
    meta = front_matter(card.read_text(encoding="utf-8", errors="replace"))
    value = meta.get("license")
    return str(value) if value else None


def front_matter(text: str) -> dict:
    if not text.startswith("---"):
        return {}
    import yaml

    end = text.find("\n---", 3)
    try:
        data = yaml.safe_load(text[3:end]) if end > 0 else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def hub_dataset(path: str | None) -> str | None:
    """A data source that names a hub dataset (`hf://datasets/owner/name/...`); local files are not."""
    if path and str(path).startswith("hf://datasets/"):
        parts = str(path)[len("hf://datasets/"):].split("/")
        return "/".join(parts[:2]) if len(parts) >= 2 else None
    return None


def metadata(recipe, kind: str) -> dict:
    """kind: adapter (PEFT folder), model (full weights, merged or fine-tuned) or onnx."""
    from phitune.recipe.task import uses_head

    tags = ["phitune", recipe.method.type, recipe.task.type.replace("_", "-")]
    meta: dict = {"base_model": recipe.model.name}
    if kind == "adapter":
        meta["library_name"] = "peft"
        tags.append("lora" if recipe.method.lora_adapter else "peft")
    elif kind == "onnx":
        meta["library_name"] = "onnxruntime-genai"
        tags += ["onnx"]
    else:
        meta["library_name"] = "transformers"
    if uses_head(recipe.task):
        meta["pipeline_tag"] = "token-classification" if recipe.task.type == "ner" else "text-classification"
    else:
        meta["pipeline_tag"] = "text-generation"
    datasets = [d for d in (hub_dataset(recipe.data.train), hub_dataset(recipe.data.validation)) if d]
    if datasets:
        meta["datasets"] = sorted(set(datasets))
    license_ = base_license(recipe.model.name)
    if license_:
        meta["license"] = license_
    meta["tags"] = list(dict.fromkeys(tags))
    return meta


def render(recipe, kind: str, what: str, metrics: dict | None, command: str | None = None,
           extra_sections: list[tuple[str, list[str]]] = ()) -> str:
    """The README.md text: front matter, then what this folder is and how it was made."""
    import yaml

    from phitune.version import __version__

    meta = metadata(recipe, kind)
    m = metrics or {}
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "",
             f"# {recipe.name}: {what}", "",
             f"{recipe.description}" if getattr(recipe, "description", None) else
             f"`{recipe.model.name}` fine-tuned with {recipe.method.type} on a {recipe.task.type} task by phitune.", ""]
    method = recipe.method.model_dump(mode="json")
    train = recipe.train.model_dump(mode="json")
    lines += ["## Method and hyperparameters", "",
              "| setting | value |", "|---|---|"]
    lines += [f"| method.{k} | `{json.dumps(v)}` |" for k, v in method.items()]
    lines += [f"| train.{k} | `{json.dumps(v)}` |" for k, v in train.items() if v is not None and not isinstance(v, dict)]
    lines += ["", "## Data", "",
              f"- training: `{Path(recipe.data.train).name}`" if recipe.data.train else "- training: (none)",
              f"- held-out: `{Path(recipe.data.validation).name}`" if recipe.data.validation else
              "- held-out: a split of the training data", ""]
    data = m.get("data") or {}
    if data:
        counts = {k: v for k, v in data.items() if isinstance(v, (int, float))}
        if counts:
            lines += [", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in counts.items()), ""]
    if m:
        lines += ["## Training", ""]
        if m.get("steps") is not None:
            lines.append(f"- {m['steps']} optimizer steps in {m.get('train_runtime_s', 0):.1f} s "
                         f"on {m.get('device') or 'cpu'}; peak RSS {m.get('peak_rss_mb', 0):.0f} MB")
        if m.get("trainable_params") is not None:
            lines.append(f"- {m['trainable_params']:,} of {m['total_params']:,} parameters trained")
        for key in ("final_train_loss", "final_eval_loss"):
            if m.get(key) is not None:
                lines.append(f"- {key.replace('_', ' ')}: {m[key]:.4g}")
        lines.append("")
        before, after = m.get("eval_before") or {}, m.get("eval_after") or {}
        keys = [k for k in after if k not in ("examples", "samples", "eval_tokens") and not isinstance(after[k], (list, dict))]
        if keys:
            lines += ["## Evaluation (held-out, before -> after training)", "", "| metric | before | after |", "|---|---:|---:|"]
            lines += [f"| {k} | {_num(before.get(k))} | {_num(after.get(k))} |" for k in keys]
            lines.append("")
    for title, body in extra_sections:
        lines += [f"## {title}", "", *body, ""]
    lines += ["## How it was made", "", "```bash", command or run_command(), "```", "",
              f"phitune {__version__}. The full recipe is in `resolved_recipe.json` of the run folder.", ""]
    return "\n".join(lines)


def write_card(folder: Path, recipe, kind: str, what: str, metrics: dict | None, **kw) -> Path:
    path = Path(folder) / CARD
    path.write_text(render(recipe, kind, what, metrics, **kw), encoding="utf-8")
    return path


def write_run_cards(outputs: dict[str, Path], recipe, metrics: dict, run_dir: Path) -> list[Path]:
    """README.md in the run's adapter/, model/ and merged/ folders (paths inside `run_dir`)."""
    what = {"adapter": ("adapter", "the trained adapter (load it on the base model with peft)"),
            "model": ("model", "the fine-tuned model"),
            "merged": ("model", "the adapter merged into the base weights, ready for inference")}
    written = []
    for name, (kind, text) in what.items():
        folder = Path(run_dir) / Path(outputs[name]).name if name in outputs else None
        if folder is not None and folder.is_dir():
            written.append(write_card(folder, recipe, kind, text, metrics))
    return written


def _num(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
