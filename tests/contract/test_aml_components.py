"""Component inputs, component command lines, CLI flags and recipe fields agree: no hyperparameter is
written in three places by hand (phitune.targets.component_inputs is the one table)."""

from __future__ import annotations

import re
import shlex
import tomllib

import pytest
import yaml

from conftest import REPO
from phitune.cli import build_parser
from phitune.recipe import load_recipe
from phitune.targets.component_inputs import (FINETUNE_OVERRIDES, FINETUNE_PATH_INPUTS, azure_input_spec,
                                              recipe_field, set_fragment)
from phitune.targets.pipeline_yaml import load_component, render_command

COMPONENTS = sorted((REPO / "components").glob("*.yml"))
FINETUNE = load_component(REPO / "components" / "finetune.yml")


@pytest.mark.parametrize("override", FINETUNE_OVERRIDES, ids=lambda o: o.input)
def test_finetune_input_is_derived_from_the_recipe_field(override):
    assert FINETUNE.inputs[override.input] == azure_input_spec(override), (
        "components/finetune.yml drifted from the recipe schema: regenerate its inputs with "
        "`python -m phitune.targets.component_inputs`")
    assert set_fragment(override) in " ".join(FINETUNE.command.split())


def test_every_finetune_input_and_set_line_is_in_the_table():
    table = {o.input for o in FINETUNE_OVERRIDES} | set(FINETUNE_PATH_INPUTS) | {"recipe"}
    assert set(FINETUNE.inputs) == table
    fields = {o.field for o in FINETUNE_OVERRIDES} | set(FINETUNE_PATH_INPUTS.values())
    assert set(re.findall(r"--set ([a-z_.]+)=", FINETUNE.command)) == fields
    for override in FINETUNE_OVERRIDES:
        assert not FINETUNE.inputs[override.input].get("default"), "an override with a default always wins"


@pytest.mark.parametrize("override", FINETUNE_OVERRIDES, ids=lambda o: o.input)
def test_each_override_reaches_its_recipe_field(override):
    """A value Azure would pass through the input lands in the recipe field, as the CLI parses it."""
    spec = azure_input_spec(override)
    value = {"integer": spec.get("min", 1) + 1, "number": 0.5, "boolean": True}[spec["type"]]
    command = render_command(f"x {set_fragment(override)}", {override.input: value}, {})
    recipe = load_recipe(REPO / "examples" / "recipes" / "tiny-lora.yaml", overrides=[shlex.split(command)[-1]])
    section, name = override.field.split(".")
    assert getattr(getattr(recipe, section), name) == value
    assert recipe_field(override.field) is not None


@pytest.mark.parametrize("path", COMPONENTS, ids=lambda p: p.stem)
def test_component_commands_parse_with_the_real_cli(path):
    component = load_component(path)
    values = {name: _sample(spec) for name, spec in component.inputs.items()}
    outputs = {name: f"/mnt/outputs/{name}" for name in component.outputs}
    command = render_command(component.command, values, outputs)
    parts = [shlex.split(part) for part in command.split("&&")]
    cli_calls = [p[3:] for p in parts if p[:3] == ["python", "-m", "phitune.cli"]]
    assert cli_calls, command
    parser = build_parser()
    for argv in cli_calls:
        args = parser.parse_args(argv)  # SystemExit (a test error) if a flag or subcommand does not exist
        assert getattr(args, "handler", None), argv


def _sample(spec: dict):
    return {"integer": spec.get("min", 1), "number": 0.5, "boolean": True,
            "string": (spec.get("enum") or ["x"])[0]}.get(spec["type"], "/mnt/inputs/path")


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;]+)\s*", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_environment_pins_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = _pins(project["dependencies"] + sum(project["optional-dependencies"].values(), []))
    gpu = _pins((REPO / "environments" / "train-gpu" / "requirements.txt").read_text().splitlines())
    conda = yaml.safe_load((REPO / "environments" / "cpu" / "conda.yml").read_text())
    cpu = _pins(next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict)))
    for env in (gpu, cpu):
        shared = {name: version for name, version in env.items() if name in declared}
        assert shared == {name: declared[name] for name in shared}
        assert {"torch", "transformers", "peft", "pydantic"} <= set(shared)
    assert set(_pins(project["dependencies"])) <= set(gpu), "the GPU image must carry every runtime dependency"
    assert "azureml-mlflow" in gpu and "azureml-mlflow" in cpu
