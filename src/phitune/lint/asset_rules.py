"""phitune's rules for environments, compute clusters, models and data assets.

azure-ai-ml's asset schemas read the keys and types (see `schema_walk`). What they leave to Azure or
to upload time (each seen by loading such YAMLs offline with azure-ai-ml 1.35, which succeeds):
- a missing local `conda_file`, build context or Dockerfile, model or data `path`: the SDK reads these
  files only when it uploads, so `az ml ... create` fails after the request is under way;
- an environment with neither `image` nor `build` (or both): Azure rejects it when it registers it;
- `min_instances` above `max_instances`: the SDK sends it; Azure rejects the cluster.
"""

from __future__ import annotations

from pathlib import Path

from phitune.errors import Problem
from phitune.lint.component_rules import is_local
from phitune.lint.source import YamlDoc


def check_environment(doc: YamlDoc) -> list[Problem]:
    data = doc.data
    problems = []
    build = data.get("build")
    if not data.get("image") and not isinstance(build, dict):
        problems.append(doc.problem((), "an environment needs `image:` or `build:`",
                                    "add image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04 "
                                    "(or a build context)"))
    if data.get("image") and isinstance(build, dict):
        problems.append(doc.problem(("build",), "an environment takes `image:` or `build:`, not both"))
    if isinstance(build, dict) and is_local(str(build.get("path", "."))):
        context = doc.path.parent / str(build.get("path", "."))
        dockerfile = str(build.get("dockerfile_path", "Dockerfile"))
        if not context.is_dir():
            problems.append(doc.problem(("build", "path"), f"build context {build.get('path')} does not exist"))
        elif not (context / dockerfile).is_file():
            problems.append(doc.problem(("build", "dockerfile_path") if "dockerfile_path" in build else ("build",),
                                        f"no {dockerfile} in {context}"))
    conda = data.get("conda_file")
    if is_local(conda) and not (doc.path.parent / conda).is_file():
        problems.append(doc.problem(("conda_file",), f"conda file {conda} does not exist "
                                    f"(relative to {doc.path.parent})"))
    return problems


def check_compute(doc: YamlDoc) -> list[Problem]:
    data = doc.data
    low, high = data.get("min_instances", 0), data.get("max_instances", 1)
    if isinstance(low, int) and isinstance(high, int) and low > high:
        return [doc.problem(("min_instances",), f"min_instances {low} is above max_instances {high}")]
    return []


def check_local_path(doc: YamlDoc) -> list[Problem]:
    """A model or data asset's local `path` (relative to the YAML file) must exist."""
    path = doc.data.get("path")
    if is_local(path) and not (doc.path.parent / path).exists() and not Path(path).exists():
        return [doc.problem(("path",), f"local path {path} does not exist (relative to {doc.path.parent})")]
    return []
