"""The typed recipe: schema sections, loading with overrides, resolved JSON."""

from phitune.recipe.load import load_recipe, recipe_json_schema, write_resolved
from phitune.recipe.schema import Recipe

__all__ = ["Recipe", "load_recipe", "recipe_json_schema", "write_resolved"]
