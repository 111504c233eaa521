"""What both export paths (a single model, onnx_export.py; multi-LoRA, multi_lora.py) share: the step
timer with its progress bar, the builder log kept in genai/, and export_report.json's content."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from phitune.export import layout
from phitune.version import __version__


class Steps:
    """A tqdm bar over the export's steps, and how long each took (for the report)."""

    def __init__(self, names: list[str], progress: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=len(names), desc="export", unit="step", disable=not progress, leave=False)
        self.timings: dict[str, float] = {}
        self._name, self._start = None, 0.0

    def start(self, name: str) -> None:
        self._finish()
        self._name, self._start = name, time.perf_counter()
        self.bar.set_postfix_str(name)

    def close(self) -> None:
        self._finish()
        self.bar.close()

    def _finish(self) -> None:
        if self._name is not None:
            self.timings[self._name] = round(time.perf_counter() - self._start, 3)
            self.bar.update(1)
            self._name = None


def keep_builder_log(out: Path) -> None:
    """Copy the builder's log from the work folder into genai/, which the export keeps."""
    shutil.copy(out / ".work" / "builder.log", out / layout.GENAI / "builder.log")


def build_report(source, precision, checks, collisions, padded, config, timings, max_new_tokens, extra=None) -> dict:
    """The content of export_report.json (`extra`: sections only some exports have, e.g. multi_lora)."""
    return {
        "phitune_export_version": 1,
        "phitune_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "name": source.name,
        "source": source.as_dict(),
        "precision": precision,
        "files": {"genai": f"{layout.GENAI}/", "logits_graph": f"{layout.LOGITS}/model.onnx",
                  "tokenizer": f"{layout.TOKENIZER}/", "builder_log": f"{layout.GENAI}/builder.log"},
        "model": {"architecture": (config.architectures or ["?"])[0], "vocab_size": config.vocab_size,
                  "hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
                  "layers": config.num_hidden_layers},
        "builder_defect": {
            "collisions": [c.as_dict() for c in collisions],
            "action": "widened MLP with zeros" if padded else "none needed",
            "exported_intermediate_size": padded or config.intermediate_size,
        },
        **(extra or {}),
        "parity": {"max_new_tokens": max_new_tokens, **checks},
        "passed": all(c.get("passed") or not c.get("enforced") for _, c in labelled_sections(checks)),
        "timings_s": timings,
    }


def labelled_sections(checks: dict):
    """(label, check) for every parity check in a report's `parity`, nested ones labelled `outer.inner`."""
    for key, value in checks.items():
        if isinstance(value, dict) and "enforced" in value:
            yield key, value
        elif isinstance(value, dict):
            yield from ((f"{key}.{k}", v) for k, v in value.items() if isinstance(v, dict) and "enforced" in v)
