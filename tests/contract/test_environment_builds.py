"""The Azure ML environments can be built: every pin accepts the image's Python, torch is installed once.

`environments/check_envs.py` is the check (its `--resolve` mode is `make check-envs`, which needs the
package index); here it runs offline against this venv's installed metadata.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def check_envs():
    spec = importlib.util.spec_from_file_location("check_envs", REPO / "environments" / "check_envs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_envs", module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _write_docker_env(folder: Path, dockerfile: str, requirements: str) -> Path:
    env = folder / "train-gpu"
    env.mkdir(parents=True)
    (env / "environment.yml").write_text("name: x\nbuild:\n  path: .\n")
    (env / "Dockerfile").write_text(dockerfile)
    (env / "requirements.txt").write_text(requirements)
    return folder


# The image as it was: an ACPT base with Python 3.10 and its own CUDA 12.4 torch 2.6.
OLD_DOCKERFILE = ("ARG BASE_IMAGE=mcr.microsoft.com/aifx/acpt/stable-ubuntu2204-cu124-py310-torch260:latest\n"
                  "FROM ${BASE_IMAGE}\nCOPY requirements.txt /tmp/r.txt\nRUN python -m pip install -r /tmp/r.txt\n")
OLD_REQUIREMENTS = "torch==2.13.0\ntransformers==5.23.0\npeft==0.21.2\n"


def test_the_repository_environments_pass(check_envs):
    envs = check_envs.environments()
    assert sorted(e.name for e in envs) == ["cpu", "train-gpu"]
    for env in envs:
        assert env.python and env.platform, env.name
        assert check_envs.offline_problems(env) == []
    gpu = next(e for e in envs if e.name == "train-gpu")
    assert gpu.python == "3.11" and gpu.base_torch is None and gpu.pins["torch"] == "2.13.0"


def test_the_old_acpt_image_fails_on_python_and_on_replacing_torch(check_envs, tmp_path):
    (env,) = check_envs.environments(_write_docker_env(tmp_path, OLD_DOCKERFILE, OLD_REQUIREMENTS))
    assert (env.python, env.base_torch, env.platform) == ("3.10", "2.6.0", "manylinux_2_35_x86_64")
    problems = check_envs.offline_problems(env)
    assert any("transformers==5.23.0 requires Python >=3.11" in p and "Python 3.10" in p for p in problems)
    assert any("ships torch 2.6.0" in p and "torch 2.13.0" in p for p in problems)


def test_replacing_the_base_torch_is_accepted_with_a_reason(check_envs, tmp_path):
    dockerfile = OLD_DOCKERFILE.replace("py310", "py311")
    requirements = "# replaces the base image's torch: the pins need torch 2.13\n" + OLD_REQUIREMENTS
    (env,) = check_envs.environments(_write_docker_env(tmp_path, dockerfile, requirements))
    assert check_envs.offline_problems(env) == []


def test_a_declared_python_overrides_the_tag_and_unknown_pins_are_reported(check_envs, tmp_path):
    dockerfile = "ARG PYTHON_VERSION=3.12\nFROM mcr.microsoft.com/azureml/openmpi5.0-cuda13.1-ubuntu24.04:latest\n"
    (env,) = check_envs.environments(_write_docker_env(tmp_path, dockerfile, "not-a-real-dist==1.0\n"))
    assert (env.python, env.platform) == ("3.12", "manylinux_2_39_x86_64")
    (problem,) = check_envs.offline_problems(env)
    assert "not-a-real-dist==1.0 is not installed in the project venv" in problem


def test_an_image_whose_python_cannot_be_told_is_an_error(check_envs, tmp_path):
    (env,) = check_envs.environments(_write_docker_env(tmp_path, "FROM ubuntu:24.04\n", "torch==2.13.0\n"))
    (problem,) = check_envs.offline_problems(env)
    assert "cannot tell the image's Python" in problem
