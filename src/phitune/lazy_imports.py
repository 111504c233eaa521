"""Start-up cost: keep optional libraries out of a process that cannot use them.

Installed libraries are imported by others merely because they are installed: peft imports
bitsandbytes (about 1-2 s here, most of it torch's inductor, plus a notice about a missing kernel),
and accelerate imports DeepSpeed when saving any model (to check whether it is a DeepSpeedEngine).
Both checks are exact to skip when their answer is known: a model that is not quantized has no
bitsandbytes layers, and nothing can be a DeepSpeedEngine while deepspeed is not even imported.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path


def skip_bitsandbytes() -> bool:
    """Mark bitsandbytes unimportable in a process that never quantizes (e.g. `phitune estimate`, which
    counts parameters on a meta-device model). Returns whether it did (not when already imported)."""
    if "bitsandbytes" in sys.modules or "peft" in sys.modules:
        return False
    sys.modules["bitsandbytes"] = None  # `import bitsandbytes` raises ImportError; find_spec gives None
    return True


def skip_bitsandbytes_for(recipe) -> bool:
    """For a one-run process (the `phitune train` command): mark bitsandbytes unimportable when this
    recipe cannot need it (not QLoRA, and a base model known not to be saved quantized). Returns
    whether it did. Not for library use: a later QLoRA run in the same process would then lack it."""
    if "bitsandbytes" in sys.modules or "peft" in sys.modules or recipe.method.quantized_base:
        return False
    if not _known_unquantized(recipe.model.name):
        return False
    sys.modules["bitsandbytes"] = None  # `import bitsandbytes` raises ImportError; find_spec gives None
    return True


def _known_unquantized(name: str) -> bool:
    if name.startswith("builtin:"):
        return True
    config = Path(name) / "config.json"
    if not config.is_file():
        return False  # a hub id: its config is not read yet
    try:
        return "quantization_config" not in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


@contextmanager
def no_deepspeed_probe():
    """While saving a model: accelerate's `extract_model_from_parallel` imports deepspeed (and with it
    DeepSpeed's accelerator detection) only to test `isinstance(model, DeepSpeedEngine)`. When deepspeed
    is not imported, no object is a DeepSpeedEngine, so the answer is known: skip the import."""
    if "deepspeed" in sys.modules:
        yield
        return
    try:
        import accelerate.utils.other as other
    except ImportError:
        yield
        return
    original = getattr(other, "is_deepspeed_available", None)
    if original is None:
        yield
        return
    other.is_deepspeed_available = lambda: False
    try:
        yield
    finally:
        other.is_deepspeed_available = original
