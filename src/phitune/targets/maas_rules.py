"""What Azure AI serverless fine-tuning (MaaS) accepts, checked before anything is sent.

Models: any registry model URI (`azureml://registries/<registry>/models/<name>/versions/<n>` or
`/labels/latest`), or a short catalog name; the families offered for serverless fine-tuning (Phi, Llama,
Mistral) are listed with their registry, and a model outside the list is a warning, not an error (the
service decides). Method: LoRA (the service trains LoRA adapters; nothing else is offered). Tasks: chat
(ChatCompletion) and completion (TextCompletion) with Azure's `text` / `ground_truth` keys or
`prompt` / `completion`. Data: JSONL, UTF-8 (a BOM is fine), each file under 512 MB.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from phitune.errors import Problem
from phitune.recipe.method import DoraMethod, FullMethod, LoraMethod
from phitune.targets.pipeline_plan import REGISTRY_MODEL

# Catalog models offered for serverless fine-tuning, by registry (Azure/azureml-examples, serverless
# fine-tuning samples and their supported-models table). Phi lives in `azureml`, Llama in `azureml-meta`,
# Mistral in `azureml-mistral`.
SERVERLESS_FAMILIES: dict[str, tuple[str, ...]] = {
    "azureml": ("Phi-3-mini-4k-instruct", "Phi-3-mini-128k-instruct", "Phi-3-medium-4k-instruct",
                "Phi-3-medium-128k-instruct", "Phi-3.5-mini-instruct", "Phi-3.5-MoE-instruct", "Phi-4-mini-instruct"),
    "azureml-meta": ("Meta-Llama-3.1-8B-Instruct", "Meta-Llama-3.1-70B-Instruct", "Meta-Llama-3-8B",
                     "Llama-2-7b", "Llama-2-13b", "Llama-2-70b"),
    "azureml-mistral": ("Ministral-3B", "Mistral-Nemo", "Mistral-Large-2411"),
}
SERVERLESS_MODELS = tuple(name for names in SERVERLESS_FAMILIES.values() for name in names)
_REGISTRY_OF = {name.lower(): (registry, name) for registry, names in SERVERLESS_FAMILIES.items() for name in names}
_HUB_ORGS = ("microsoft/", "meta-llama/", "mistralai/")
_CATALOG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Serverless task -> the keys the service reads (it takes no key-mapping setting).
TASKS = {"chat": "ChatCompletion", "completion": "TextCompletion"}
COMPLETION_KEYS = {("text", "ground_truth"): "text_key / ground_truth_key", ("prompt", "completion"): "prompt_key / completion_key"}
MAX_BYTES = 512 * 1024 * 1024
MAX_REPORTED = 10  # bad records listed per file
CHAT_ROLES = {"system", "user", "assistant"}
DEFAULT_VALIDATION_SPLIT = 0.1


def registry_uri(name: str, registry: str = "azureml") -> str:
    return f"azureml://registries/{registry}/models/{name}/labels/latest"


def resolve_model(name: str, field: str) -> tuple[str | None, list[Problem]]:
    """(registry URI, problems). Accepts a registry URI of any registry, a catalog short name (a listed one
    gets its registry; any other is looked up in `azureml`), or `<org>/<listed name>`."""
    fix = f"use a registry model URI or a catalog name such as {', '.join(SERVERLESS_MODELS[:3])} (e.g. {registry_uri(SERVERLESS_MODELS[0])})"
    match = REGISTRY_MODEL.match(name)
    if match:
        if match.group("label") not in (None, "latest"):
            return None, [Problem(field, f"label {match.group('label')!r} is not supported", "use /labels/latest or /versions/<n>")]
        return name, []
    short = name
    if name.lower().startswith(_HUB_ORGS):
        short = name.split("/", 1)[1]
        if short.lower() not in _REGISTRY_OF:
            return None, [Problem(field, f"{name} is a Hugging Face id, not a model serverless fine-tuning accepts", fix)]
    if short.lower() in _REGISTRY_OF:
        registry, canonical = _REGISTRY_OF[short.lower()]
        return registry_uri(canonical, registry), []
    if _CATALOG_NAME.match(short) and not short.startswith("builtin"):
        return registry_uri(short), []
    return None, [Problem(field, f"{name} is not a model serverless fine-tuning accepts", fix)]


def model_warnings(uri: str) -> list[str]:
    """A warning when the model is not in the shipped list of serverless fine-tunable models."""
    match = REGISTRY_MODEL.match(uri)
    if match and match.group("name") in SERVERLESS_FAMILIES.get(match.group("registry"), ()):
        return []
    what = f"{match.group('name')} (registry {match.group('registry')})" if match else uri
    return [f"{what} is not in phitune's list of serverless fine-tunable models: the service decides whether it "
            f"can be fine-tuned in your region (listed: {', '.join(SERVERLESS_MODELS)})"]


def is_latest(uri: str) -> bool:
    match = REGISTRY_MODEL.match(uri)
    return bool(match) and match.group("label") == "latest"


def method_problems(recipe) -> list[Problem]:
    if isinstance(recipe.method, LoraMethod):
        return []
    method = recipe.method.type
    reasons = {
        FullMethod: "serverless fine-tuning trains LoRA adapters only; full fine-tuning needs your own GPUs",
        DoraMethod: "serverless fine-tuning trains plain LoRA adapters; DoRA's magnitude vectors are not offered",
    }
    reason = reasons.get(type(recipe.method), f"serverless fine-tuning trains LoRA only, not {method}")
    return [Problem("method.type", reason,
                    "use method.type: lora, or --target maap to run this method on your own compute")]


def task_problems(recipe) -> list[Problem]:
    task = recipe.task
    if task.type not in TASKS:
        return [Problem("task.type", f"serverless fine-tuning does not offer task {task.type!r}", "use chat or completion")]
    if task.type == "chat" and task.messages_key != "messages":
        return [Problem("task.messages_key", "serverless fine-tuning reads the `messages` key only",
                        "rename the key in the data to `messages`")]
    if task.type == "completion":
        keys = completion_keys(task)
        if keys[0] is None:
            return [Problem("task.text_key", "serverless text completion learns a target after an input text, not "
                            "plain text", "set task.ground_truth_key (Azure's data: text / ground_truth), or use "
                                          "--target maap for plain-text domain adaptation")]
        if keys not in COMPLETION_KEYS:
            field = "task.text_key" if task.text_key else "task.prompt_key"
            return [Problem(field, f"serverless fine-tuning reads fixed keys (text / ground_truth, or prompt / "
                            f"completion), not {keys[0]} / {keys[1]}",
                            "rename the keys in the data, e.g. to Azure's text / ground_truth")]
        if task.learn != "target":
            return [Problem("task.learn", "serverless fine-tuning takes no setting for which tokens are learned",
                            "use task.learn: target, or --target maap")]
    return []


def completion_keys(task) -> tuple[str | None, str]:
    """(input key, target key) of a completion task; input None for plain text."""
    return task.input_key, task.target_key


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


def data_problems(path: str, task_type: str, field: str, keys: tuple[str, str] = ("prompt", "completion")) -> list[Problem]:
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
        message = _record_problem(line, task_type, keys)
        if message:
            bad += 1
            if bad <= MAX_REPORTED:
                problems.append(Problem(f"{path}:{number}", message, _record_fix(task_type, keys)))
    if bad > MAX_REPORTED:
        problems.append(Problem(path, f"... and {bad - MAX_REPORTED} more bad records", "run `phitune data check`"))
    if records == 0:
        problems.append(Problem(field, f"{path} has no records"))
    return problems


def _record_problem(line: str, task_type: str, keys: tuple[str, str]) -> str | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg})"
    if not isinstance(record, dict):
        return "each line must be a JSON object"
    if task_type == "completion":
        for key in keys:
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


def _record_fix(task_type: str, keys: tuple[str, str]) -> str:
    if task_type == "completion":
        return f'each line: {{"{keys[0]}": "...", "{keys[1]}": "..."}}'
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
