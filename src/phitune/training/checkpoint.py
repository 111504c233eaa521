"""Resumable checkpoints under RUN_DIR/checkpoints/step-N/, safetensors + JSON only (no pickle).

A checkpoint holds everything that decides the rest of the run, so resuming reaches the same final
weights as an uninterrupted run:
  trainable.safetensors   the parameters that train (adapter weights, or every weight for full FT)
  optimizer.safetensors   optimizer state tensors; optimizer.json the rest (param groups, scalars)
  scheduler.json          the lr scheduler's counters (the schedule itself is a pure function)
  rng.json, rng_torch.safetensors   python / numpy / torch RNG states at the data position
  trainer_state.json      step, data position (epoch + micro-batch index), loss and eval history
Each checkpoint is written to a temporary folder and renamed into place, so a crash mid-write never
leaves a half checkpoint that `--resume` would pick up. A checkpoint damaged later (a truncated file,
a disk that filled up under another writer) is skipped by `newest_valid_checkpoint`, which says so and
resumes from the newest one that is whole. A write that fails (disk full) is one TrainError; the
previous checkpoints are untouched.
A DeepSpeed run's checkpoints keep the same trainer_state.json and RNG files (one pair per rank) beside
the engine's own files (phitune.training.deepspeed_backend).
"""

from __future__ import annotations

import json
import logging
import random
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

from phitune.models.run_dir import CHECKPOINTS
from phitune.files import atomic_dir, writing

log = logging.getLogger("phitune.training")

STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def capture_rng() -> dict[str, Any]:
    """RNG states of python, numpy and torch (CPU), cheap enough to take every optimizer step."""
    import numpy as np
    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(), "cuda": cuda}


def restore_rng(states: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def trainable_state(model) -> dict:
    """name -> tensor for every parameter that trains, detached and contiguous for safetensors."""
    return {name: p.detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(run_dir: Path, step: int, model, optimizer, scheduler, state: dict, rng: dict) -> Path:
    """The single-process checkpoint checkpoints/step-`step`/ (the files in the module docstring)."""
    from safetensors.torch import save_file

    final = Path(run_dir) / CHECKPOINTS / f"step-{step}"
    with writing(f"checkpoint step-{step}", final), atomic_dir(final) as tmp:
        save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
        opt_tensors, opt_rest = _split_optimizer_state(optimizer.state_dict())
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "optimizer.json").write_text(json.dumps(opt_rest))
        (tmp / "scheduler.json").write_text(json.dumps(_jsonable(scheduler.state_dict())))
        save_rng(rng, tmp / "rng.json", tmp / "rng_torch.safetensors")
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
    return final


def save_rng(rng: dict, json_path: Path, tensors_path: Path) -> None:
    """A `capture_rng` result as JSON (python, numpy) and safetensors (torch, cuda): no pickle."""
    from safetensors.torch import save_file

    cuda = {f"cuda.{i}": t.contiguous() for i, t in enumerate(rng.get("cuda", []))}
    save_file({"torch": rng["torch"].contiguous(), **cuda}, str(tensors_path))
    py_version, py_state, py_gauss = rng["python"]
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = rng["numpy"]
    Path(json_path).write_text(json.dumps({
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
    }))


def load_rng(json_path: Path, tensors_path: Path) -> dict[str, Any]:
    """What `save_rng` wrote, in the form `restore_rng` takes."""
    import numpy as np
    from safetensors.torch import load_file

    raw = json.loads(Path(json_path).read_text())
    py_version, py_state, py_gauss = raw["python"]
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = raw["numpy"]
    tensors = load_file(str(tensors_path))
    return {
        "python": (py_version, tuple(py_state), py_gauss),
        "numpy": (np_name, np.array(np_keys, dtype=np.uint32), np_pos, np_has_gauss, np_gauss),
        "torch": tensors["torch"],
        "cuda": [tensors[f"cuda.{i}"] for i in range(sum(k.startswith("cuda.") for k in tensors))],
    }


def read_state(path: Path) -> dict:
    """The trainer state (step, data position, histories) of the checkpoint folder `path`."""
    return json.loads((Path(path) / STATE_FILE).read_text())


def latest_checkpoint(run_dir: Path) -> Path | None:
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()]
    return max(steps)[1] if steps else None


def newest_valid_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint whose files are all whole; each newer damaged one is named with why."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return None
    steps = sorted(((int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))), reverse=True)
    for _, path in steps:
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        log.warning("skipping checkpoint %s: %s", path, problem)
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint folder `path` cannot be resumed from (None when it looks whole): a missing
    trainer state, or a truncated/unreadable safetensors, JSON or torch (zip) file. Reads headers
    only, so it costs milliseconds even for a large model."""
    path = Path(path)
    if not (path / STATE_FILE).is_file():
        return f"{STATE_FILE} is missing"
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        try:
            if file.suffix == ".safetensors":
                _check_safetensors(file)
            elif file.suffix == ".json":
                json.loads(file.read_text())
            elif file.suffix in (".pt", ".bin") and zipfile.is_zipfile(file) is False:
                raise ValueError("not a complete torch file (truncated?)")
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return f"{file.relative_to(path)}: {exc}"
    return None


def _check_safetensors(file: Path) -> None:
    """The header parses and the file is as long as the tensors it lists (a truncated file is not)."""
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError(f"truncated ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise ValueError(f"truncated (header of {n} bytes in a {size}-byte file)")
        header = json.loads(fh.read(n))
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        raise ValueError(f"truncated: {size} bytes, the header describes {8 + n + end}")


def load_checkpoint(path: Path, model, optimizer, scheduler) -> tuple[dict, dict]:
    """Load weights, optimizer and scheduler in place; return (trainer_state, rng_states)."""
    import torch
    from safetensors.torch import load_file

    path = Path(path)
    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    unexpected = [n for n in weights if n not in params]
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    optimizer.load_state_dict(_join_optimizer_state(load_file(str(path / "optimizer.safetensors")),
                                                    json.loads((path / "optimizer.json").read_text())))
    scheduler.load_state_dict(json.loads((path / "scheduler.json").read_text()))
    rng = load_rng(path / "rng.json", path / "rng_torch.safetensors")
    return read_state(path), rng


def _split_optimizer_state(sd: dict) -> tuple[dict, dict]:
    import torch

    tensors: dict = {}
    rest: dict = {"param_groups": _jsonable(sd["param_groups"]), "state": {}}
    for idx, entry in sd["state"].items():
        rest["state"][str(idx)] = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value.contiguous()
                rest["state"][str(idx)][key] = {"__tensor__": f"{idx}.{key}"}
            else:
                rest["state"][str(idx)][key] = _jsonable(value)
    return tensors, rest


def _join_optimizer_state(tensors: dict, rest: dict) -> dict:
    state = {
        int(idx): {k: tensors[v["__tensor__"]] if isinstance(v, dict) and "__tensor__" in v else v for k, v in entry.items()}
        for idx, entry in rest["state"].items()
    }
    groups = [{k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()} for g in rest["param_groups"]]
    return {"state": state, "param_groups": groups}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if not callable(v)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value
