"""The `Recipe`: the one validated object that crosses every process and cloud boundary."""

from __future__ import annotations

import hashlib
import json

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from phitune.recipe.base import CONFLICTS, Section
from phitune.recipe.method import PHI3_DEFAULT_MODULES, LoraMethod, MethodSpec, method_conflicts
from phitune.recipe.sections import DataSpec, EvalSpec, ModelSpec, OutputSpec, TrackingSpec, TrainSpec
from phitune.recipe.target import LocalTarget, TargetSpec
from phitune.recipe.task import ChatTask, TaskSpec, task_conflicts
from phitune.redact import redact_data


class Recipe(Section):
    name: str = Field("phitune-run", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str | None = None
    model: ModelSpec = Field(default_factory=ModelSpec)
    task: TaskSpec = Field(default_factory=ChatTask)
    data: DataSpec
    method: MethodSpec = Field(default_factory=LoraMethod)
    train: TrainSpec = Field(default_factory=TrainSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    target: TargetSpec = Field(default_factory=LocalTarget)

    @model_validator(mode="after")
    def _method_fits_the_rest(self) -> "Recipe":
        self._fill_known_module_defaults()
        conflicts = self.method.module_conflicts() + method_conflicts(self) + task_conflicts(self)
        if conflicts:
            # One error whose text reads as a sentence; load_recipe turns ctx["conflicts"] into one
            # problem per conflict, each at its own field and YAML line.
            raise PydanticCustomError(CONFLICTS, "{summary}", {
                "summary": "; ".join(c.message for c in conflicts), "conflicts": [tuple(c) for c in conflicts]})
        return self  # pydantic ignores another object returned here when the model is built with Recipe(...)

    def _fill_known_module_defaults(self) -> None:
        """A built-in model is phitune's tiny Phi-3, so the method's default modules are known now (other
        models get theirs when built: phitune.models.default_modules). Set in place while validating:
        the recipe is frozen once built."""
        if self.model.is_builtin:
            object.__setattr__(self, "method", self.method.with_default_modules(PHI3_DEFAULT_MODULES))

    def to_dict(self) -> dict:
        """Every field, secrets included (a SAS data URL keeps its signature): for code that hands the
        data to Azure. Anything written, printed or logged uses `public_dict`."""
        return self.model_dump(mode="json")

    def public_dict(self) -> dict:
        """`to_dict` with secrets redacted (`sig=REDACTED`, see phitune.redact)."""
        return redact_data(self.to_dict())

    def content_hash(self) -> str:
        """sha256 of the canonical JSON: the same hash means the same run configuration (a renewed
        SAS signature on the same data does not change it)."""
        canonical = json.dumps(self.public_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def resolved_json(self) -> str:
        """The resolved recipe as written to `resolved_recipe.json` (defaults filled in, plus hash;
        secrets redacted: Azure jobs get SAS data URLs as job inputs, never through this file)."""
        body = {"phitune_recipe_version": 1, "content_hash": self.content_hash(), "recipe": self.public_dict()}
        return json.dumps(body, indent=2, sort_keys=False) + "\n"

    def flat_params(self) -> dict[str, str]:
        """`a.b.c -> value` for tracking (MLflow params)."""
        out: dict[str, str] = {}

        def walk(prefix: str, value) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                out[prefix] = json.dumps(value) if isinstance(value, (list, type(None), bool)) else str(value)

        walk("", self.public_dict())
        return out
