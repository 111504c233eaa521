"""Can each Azure ML environment in this folder be built? Two checks, one description of each environment.

`offline_problems(env)` (run by `make test`, no network): the Python of the image must satisfy
`Requires-Python` of every pinned distribution, read from the installed distributions' metadata in this venv
(which holds the same versions), and a base image that ships its own torch must keep it or say why not.

`python environments/check_envs.py --resolve` (`make check-envs`, needs the package index): resolves each
environment's requirements with pip's own resolver for the image's Python and platform, metadata only, as
the image build would, and fails on any resolution error.

Where an environment's facts come from:
- Python: a Dockerfile that makes its own interpreter declares `ARG PYTHON_VERSION=X.Y`; otherwise the base
  image tag names it (ACPT tags such as `...-py310-torch260`); a conda file names it as `python=X.Y`.
- Platform: the glibc of the base image's Ubuntu release (22.04: 2.35, 24.04: 2.39), as a manylinux tag.
- Base torch: an ACPT tag's `torchNNN`. Replacing it needs a line `# replaces the base image's torch: <why>`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
UBUNTU_GLIBC = {"20.04": "2_31", "22.04": "2_35", "24.04": "2_39"}
REPLACES_TORCH = "# replaces the base image's torch:"
# Pins that cannot live in the project venv, with the reason. They are still resolved by `make check-envs`.
NOT_IN_PROJECT_VENV = {
    "azureml-mlflow": "Azure-only tracking plugin; every release caps azure-storage-blob below what "
                      "azure-ai-ml's azure-storage-file-datalake needs, so it cannot share the project venv",
}
# Distributions PyPI ships as source only: pip cannot resolve them for a foreign platform, so the
# resolver gets their dependencies (from this venv's metadata) in their place.
SOURCE_ONLY = {"deepspeed"}


@dataclass
class Environment:
    name: str
    python: str | None
    platform: str | None
    pins: dict[str, str]
    base_image: str
    base_torch: str | None = None
    replaces_torch_reason: str | None = None
    pip_options: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _pins(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    pins, options = {}, []
    for line in lines:
        line = line.split(" #")[0].strip()
        if line.startswith("-"):
            options.extend(line.split())
        elif match := re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line):
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins, options


def _facts_from_image(image: str) -> tuple[str | None, str | None, str | None]:
    """(python, platform, torch) named by an image reference, each None where the tag does not say."""
    python = torch = platform = None
    if match := re.search(r"-py(\d)(\d+)\b", image):
        python = f"{match.group(1)}.{match.group(2)}"
    if match := re.search(r"-torch(\d)(\d+)(\d)\b", image):
        torch = f"{match.group(1)}.{match.group(2)}.{match.group(3)}"
    if match := re.search(r"ubuntu(\d\d)\.?(\d\d)", image):
        glibc = UBUNTU_GLIBC.get(f"{match.group(1)}.{match.group(2)}")
        platform = f"manylinux_{glibc}_x86_64" if glibc else None
    return python, platform, torch


def docker_environment(folder: Path) -> Environment:
    dockerfile = (folder / "Dockerfile").read_text()
    requirements = (folder / "requirements.txt").read_text()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", dockerfile, re.M))
    base = args.get("BASE_IMAGE") or re.search(r"^FROM\s+(\S+)", dockerfile, re.M).group(1)
    tag_python, platform, base_torch = _facts_from_image(base)
    pins, options = _pins(requirements.splitlines())
    env = Environment(folder.name, args.get("PYTHON_VERSION") or tag_python, platform, pins, base,
                      base_torch, pip_options=options)
    for text in (dockerfile, requirements):
        for line in text.splitlines():
            if line.strip().startswith(REPLACES_TORCH):
                env.replaces_torch_reason = line.split(":", 1)[1].strip()
    return env


def conda_environment(folder: Path) -> Environment:
    spec = yaml.safe_load((folder / "environment.yml").read_text())
    conda = yaml.safe_load((folder / spec["conda_file"]).read_text())
    python = next((str(d).split("=", 1)[1] for d in conda["dependencies"]
                   if isinstance(d, str) and re.fullmatch(r"python=[\d.]+", d)), None)
    pip_lines = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    pins, options = _pins(pip_lines)
    _, platform, base_torch = _facts_from_image(spec["image"])
    return Environment(folder.name, python, platform, pins, spec["image"], base_torch, pip_options=options)


def environments(root: Path = HERE) -> list[Environment]:
    found = []
    for folder in sorted(p for p in root.iterdir() if (p / "environment.yml").is_file()):
        build = (folder / "Dockerfile").is_file()
        found.append(docker_environment(folder) if build else conda_environment(folder))
    return found


def offline_problems(env: Environment) -> list[str]:
    """What would stop this image from building, found from this venv's metadata alone."""
    problems = []
    if not env.python:
        return [f"{env.name}: cannot tell the image's Python: declare ARG PYTHON_VERSION in the Dockerfile "
                f"or python=X.Y in the conda file"]
    if not env.platform:
        problems.append(f"{env.name}: cannot tell the platform of base image {env.base_image} (no ubuntuNN.NN)")
    for name, version in sorted(env.pins.items()):
        if name in NOT_IN_PROJECT_VENV:
            continue
        try:
            meta = metadata.metadata(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{env.name}: {name}=={version} is not installed in the project venv, so its "
                            f"Requires-Python cannot be checked: pin it in pyproject.toml too")
            continue
        if meta["Version"].split("+")[0] != version:
            problems.append(f"{env.name}: pins {name}=={version} but the project venv has {meta['Version']}")
        requires = meta.get("Requires-Python")
        if requires and not SpecifierSet(requires).contains(env.python, prereleases=True):
            problems.append(f"{env.name}: {name}=={version} requires Python {requires}; "
                            f"the image has Python {env.python}")
    torch = env.pins.get("torch")
    if env.base_torch and torch and torch != env.base_torch and not env.replaces_torch_reason:
        problems.append(f"{env.name}: the base image {env.base_image} ships torch {env.base_torch}, the pins "
                        f"install torch {torch} over it: keep the base's torch, or say why with a line "
                        f"'{REPLACES_TORCH} <reason>'")
    return problems


def _resolver_requirements(env: Environment) -> list[str]:
    lines = [f"{n}=={v}" for n, v in env.pins.items() if n not in SOURCE_ONLY]
    for name in SOURCE_ONLY & env.pins.keys():
        requires = metadata.requires(name) or []
        lines += [r for r in requires if "extra ==" not in r]
    return lines


def _platform_args(platform: str) -> list[str]:
    """pip takes `--platform` tags literally: a glibc 2.39 image also runs manylinux_2_17 ... 2_38 wheels."""
    glibc = int(re.fullmatch(r"manylinux_2_(\d+)_x86_64", platform).group(1))
    tags = [f"manylinux_2_{minor}_x86_64" for minor in range(glibc, 16, -1)] + ["manylinux2014_x86_64", "linux_x86_64"]
    return [arg for tag in tags for arg in ("--platform", tag)]


def resolve(env: Environment, pip: list[str]) -> tuple[bool, str]:
    """pip's resolver for the image's Python and platform, metadata only (`--dry-run --report`)."""
    with tempfile.TemporaryDirectory() as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("\n".join(_resolver_requirements(env)) + "\n")
        cmd = [*pip, "install", "--isolated", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(Path(tmp) / "report.json"), "-r", str(reqs), *env.pip_options,
               "--retries", "1", "--timeout", "20", "--python-version", env.python, *_platform_args(env.platform),
               "--only-binary=:all:", "--target", str(Path(tmp) / "target")]
        # The machine's own pip configuration (local wheel folders, constraints) must not stand in for the index.
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        clean_env["PIP_CONFIG_FILE"] = os.devnull
        done = subprocess.run(cmd, capture_output=True, text=True, env=clean_env)
        if done.returncode:
            return False, done.stderr.strip()
        installed = json.loads((Path(tmp) / "report.json").read_text())["install"]
        torch = next((i for i in installed if i["metadata"]["name"] == "torch"), None)
        cuda = [r for r in (torch or {}).get("metadata", {}).get("requires_dist", []) if "cuda-toolkit" in r]
        summary = f"{len(installed)} distributions" + (f"; torch {torch['metadata']['version']}"
                                                       f"{' with ' + cuda[0].split(';')[0] if cuda else ''}"
                                                       if torch else "")
        unreachable = sorted(set(re.findall(r"host='([^']+)'", done.stderr)))
        if unreachable:
            summary += f" (unreachable from here, resolved without it: {', '.join(unreachable)})"
        return True, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolve", action="store_true", help="also resolve with pip (needs the package index)")
    args = parser.parse_args(argv)
    failed = False
    for env in environments():
        problems = offline_problems(env)
        for problem in problems:
            print(f"error: {problem}")
        failed |= bool(problems)
        if args.resolve and env.python and env.platform:
            ok, detail = resolve(env, [sys.executable, "-m", "pip"])
            print(f"{'ok' if ok else 'error'}: {env.name} (Python {env.python}, {env.platform}): {detail}")
            failed |= not ok
        elif not problems:
            print(f"ok: {env.name} (Python {env.python}, {env.platform}): every pin accepts the image's Python")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
