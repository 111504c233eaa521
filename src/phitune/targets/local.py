"""`local`: the training core in this process (`phitune.training.run.train`)."""

from __future__ import annotations

from pathlib import Path

from phitune.errors import Problem, SubmitError
from phitune.targets.assets import default_output_dir
from phitune.targets.base import Runner
from phitune.targets.handles import LocalRunHandle
from phitune.targets.pipeline_plan import model_kind
from phitune.targets.report import Progress, Submission, SubmitLog


class LocalRunner(Runner):
    def check(self, recipe) -> list[Problem]:
        if model_kind(recipe.model.name) == "azureml":
            return [Problem("model.name", f"{recipe.model.name} is an Azure ML model: it cannot be loaded here",
                            "use --target maap or maas, or a local / builtin / hub model")]
        return []

    def submit(self, recipe, dry_run: bool = False, progress: Progress | None = None) -> Submission:
        if dry_run:
            raise SubmitError("--dry-run does not apply to the local target", [Problem(
                "--dry-run", "a local run sends nothing anywhere",
                "use `phitune validate RECIPE` to check the recipe, or --target local-pipeline --dry-run to see the commands")])
        from phitune.training.run import train

        out = Path(self.output_dir or default_output_dir(recipe.name, self.name))
        result = train(recipe, out)
        return SubmitLog(progress).done(LocalRunHandle(Path(result.output_dir), "Completed", Path(result.output_dir),
                                                       result.tracking))
