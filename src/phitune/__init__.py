"""phitune: fine-tune Phi-family (and any Hugging Face causal LM) models from one recipe.

`from phitune import load_recipe, train`. Heavy modules load lazily so that importing phitune
(and `phitune --help`) stays fast and never imports torch or azure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from phitune.version import __version__

_LAZY = {
    "load_recipe": ("phitune.recipe.load", "load_recipe"),
    "Recipe": ("phitune.recipe.schema", "Recipe"),
    "train": ("phitune.training.run", "train"),
    "RunResult": ("phitune.training.run", "RunResult"),
    "submit": ("phitune.targets.submit", "submit"),
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from phitune.recipe.load import load_recipe
    from phitune.recipe.schema import Recipe
    from phitune.training.run import RunResult, train


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        loaded = importlib.import_module(module)
        return loaded if attr is None else getattr(loaded, attr)
    raise AttributeError(f"module 'phitune' has no attribute {name!r}")
