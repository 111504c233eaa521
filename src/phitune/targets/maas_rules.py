"""What Azure AI serverless fine-tuning (MaaS) accepts, checked before anything is sent.

Models: the Phi models offered for serverless fine-tuning, from the `azureml` registry. Method: LoRA
(the service trains LoRA adapters; nothing else is offered). Tasks: chat (ChatCompletion) and
prompt/completion (TextCompletion). Data: JSONL, UTF-8 (a BOM is fine), each file under 512 MB,
records with `messages` (chat) or `prompt` + `completion` (completion).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from phitune.errors import Problem
from phitune.targets.pipeline_plan import REGISTRY_MODEL

SERVERLESS_MODELS = (
    "Phi-3-mini-4k-instruct", "Phi-3-mini-128k-instruct",
    "Phi-3-medium-4k-instruct", "Phi-3-medium-128k-instruct",
    "Phi-3.5-mini-instruct", "Phi-3.5-MoE-instruct", "Phi-4-mini-instruct",
)
TASKS = {"chat": "ChatCompletion", "completion": "TextCompletion"}
MAX_BYTES = 512 * 1024 * 1024
MAX_REPORTED = 10  # bad records listed per file
CHAT_ROLES = {"system", "user", "assistant"}
DEFAULT_VALIDATION_SPLIT = 0.1


def registry_uri(name: str) -> str:
    return f"azureml://registries/azureml/models/{name}/labels/latest"


def resolve_model(name: str, field: str) -> tuple[str | None, list[Problem]]:
    """(registry URI, problems). Accepts the full URI, the bare model name, or `microsoft/<name>`."""
    fix = f"use one of {', '.join(SERVERLESS_MODELS)} (e.g. {registry_uri(SERVERLESS_MODELS[0])})"
    match = REGISTRY_MODEL.match(name)
    if match:
        if match.group("registry") != "azureml" or match.group("name") not in SERVERLESS_MODELS:
            return None, [Problem(field, f"{name} is not offered for serverless fine-tuning", fix)]
        if match.group("label") not in (None, "latest"):
            return None, [Problem(field, f"label {match.group('label')!r} is not supported", "use /labels/latest or /versions/<n>")]
        return name, []
    short = name.removeprefix("microsoft/")
    if short in SERVERLESS_MODELS:
        return registry_uri(short), []
    return None, [Problem(field, f"{name} is not a model serverless fine-tuning accepts", fix)]


def method_problems(recipe) -> list[Problem]:
    method = recipe.method.type
    if method == "lora":
        return []
    reasons = {
        "full": "serverless fine-tuning trains LoRA adapters only; full fine-tuning needs your own GPUs",
        "dora": "serverless fine-tuning trains plain LoRA adapters; DoRA's magnitude vectors are not offered",
    }
    return [Problem("method.type", reasons.get(method, f"serverless fine-tuning trains LoRA only, not {method}"),
                    "use method.type: lora, or --target maap to run this method on your own compute")]


def task_problems(recipe) -> list[Problem]:
    task = recipe.task
    if task.type not in TASKS:
        return [Problem("task.type", f"serverless fine-tuning does not offer task {task.type!r}", "use chat or completion")]
    if task.type == "chat" and task.messages_key != "messages":
        return [Problem("task.messages_key", "serverless fine-tuning reads the `messages` key only",
                        "rename the key in the data to `messages`")]
    if task.type == "completion":
        if task.text_key:
            return [Problem("task.text_key", "serverless fine-tuning needs prompt/completion pairs, not plain text",
                            "use --target maap for plain-text domain adaptation")]
        if (task.prompt_key, task.completion_key) != ("prompt", "completion"):
            return [Problem("task.prompt_key", "serverless fine-tuning reads the `prompt` and `completion` keys only",
                            "rename the keys in the data to prompt / completion")]
    return []


def training_problems(recipe) -> list[Problem]:
    """Recipe settings serverless fine-tuning cannot honour (so the run would not be what was asked)."""
    problems = []
    if recipe.train.max_steps is not None:
        problems.append(Problem("train.max_steps", "serverless fine-tuning runs whole epochs",
                                "unset train.max_steps and set train.epochs"))
    if float(recipe.train.epochs) != int(recipe.train.epochs):
        problems.append(Problem("train.epochs", f"serverless fine-tuning runs whole epochs (got {recipe.train.epochs})",
                                f"use train.epochs: {max(1, round(recipe.train.epochs))}"))
    return problems


def data_problems(path: str, task_type: str, field: str) -> list[Problem]:
    """Every MaaS data rule broken by one file (bad records reported as FILE:LINE, at most 10)."""
    file = Path(path)
    if path.startswith(("azureml:", "https://")):
        return []  # already in Azure: the service checks it
    if not file.is_file():
        return [Problem(field, f"{path} does not exist")]
    problems = []
    if file.stat().st_size >= MAX_BYTES:
        problems.append(Problem(field, f"{path} is {file.stat().st_size / 2**20:.0f} MB; serverless fine-tuning "
                                "accepts files under 512 MB", "split the data or sample it down"))
    raw = file.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return problems + [Problem(f"{path}:{line}", "not UTF-8 text", "save the file as UTF-8")]
    bad = 0
    records = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        records += 1
        message = _record_problem(line, task_type)
        if message:
            bad += 1
            if bad <= MAX_REPORTED:
                problems.append(Problem(f"{path}:{number}", message, _record_fix(task_type)))
    if bad > MAX_REPORTED:
        problems.append(Problem(path, f"... and {bad - MAX_REPORTED} more bad records", "run `phitune data check`"))
    if records == 0:
        problems.append(Problem(field, f"{path} has no records"))
    return problems


def _record_problem(line: str, task_type: str) -> str | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg})"
    if not isinstance(record, dict):
        return "each line must be a JSON object"
    if task_type == "completion":
        for key in ("prompt", "completion"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                return f"`{key}` must be a non-empty string"
        return None
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return "`messages` must be a non-empty list"
    roles = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{i}] must be an object with role and content"
        if message.get("role") not in CHAT_ROLES:
            return f"messages[{i}].role must be one of system, user, assistant (got {message.get('role')!r})"
        if not isinstance(message.get("content"), str) or not message["content"].strip():
            return f"messages[{i}].content must be a non-empty string"
        roles.append(message["role"])
    if "user" not in roles or "assistant" not in roles:
        return "a conversation needs at least one user and one assistant message"
    if roles[-1] != "assistant":
        return "the last message must be the assistant's"
    return None


def _record_fix(task_type: str) -> str:
    if task_type == "completion":
        return 'each line: {"prompt": "...", "completion": "..."}'
    return 'each line: {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'


def split_validation(train: str, fraction: float, seed: int, folder: Path) -> tuple[Path, Path]:
    """Hold out `fraction` of the training records (seeded) into folder/validation.jsonl; the rest
    goes to folder/train.jsonl. serverless fine-tuning needs a validation file (the SDK crashes without one)."""
    lines = [line for line in Path(train).read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    order = list(range(len(lines)))
    random.Random(seed).shuffle(order)
    count = min(len(lines) - 1, max(1, round(len(lines) * fraction)))
    held = set(order[:count])
    folder.mkdir(parents=True, exist_ok=True)
    train_out, val_out = folder / "train.jsonl", folder / "validation.jsonl"
    train_out.write_text("".join(lines[i] + "\n" for i in range(len(lines)) if i not in held), encoding="utf-8")
    val_out.write_text("".join(lines[i] + "\n" for i in range(len(lines)) if i in held), encoding="utf-8")
    return train_out, val_out
