"""Target planning: the pipeline document a recipe becomes, command rendering, workspace lookup,
target switching, MaaS rules and mapping, secret redaction. No Azure calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import EXAMPLES, REPO
from phitune.errors import SubmitError
from phitune.recipe import load_recipe
from phitune.recipe.target import LocalPipelineTarget, MaapTarget, WorkspaceSpec
from phitune.targets.azure_errors import redact
from phitune.targets.pipeline_plan import build_pipeline_document
from phitune.targets.pipeline_yaml import load_pipeline, render_command

RECIPE = EXAMPLES / "recipes" / "tiny-lora.yaml"
PIPELINE = REPO / "aml" / "pipelines" / "finetune.yml"


def _doc(tmp_path, target=None, *overrides):
    recipe = load_recipe(RECIPE, overrides=list(overrides))
    resolved = tmp_path / "resolved_recipe.json"
    resolved.write_text(recipe.resolved_json())
    return build_pipeline_document(recipe, resolved, PIPELINE, target or LocalPipelineTarget(), tmp_path).data


def test_recipe_files_become_pipeline_inputs(tmp_path):
    data = _doc(tmp_path)
    assert data["inputs"]["recipe"] == {"type": "uri_file", "path": str(tmp_path / "resolved_recipe.json")}
    assert data["inputs"]["train_data"]["path"] == str(EXAMPLES.resolve() / "data" / "reviews-train.jsonl")
    assert data["inputs"]["eval_data"] == data["inputs"]["validation_data"]
    assert data["display_name"] == "tiny-lora" and data["experiment_name"] == "phitune-demo"
    assert Path(data["jobs"]["finetune"]["component"]).is_absolute()


def test_without_a_validation_file_the_input_and_its_bindings_are_removed(tmp_path):
    data = _doc(tmp_path, None, "data.validation=null", "data.validation_split=0.2")
    assert "validation_data" not in data["inputs"]
    assert "validation_data" not in data["jobs"]["finetune"]["inputs"]
    assert "validation_data" not in data["jobs"]["validate_data"]["inputs"]
    assert data["inputs"]["eval_data"] == data["inputs"]["train_data"]


def test_a_local_base_model_is_bound_and_merge_is_forced_for_evaluate(tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    data = _doc(tmp_path, None, f"model.name={model}", "output.merge=false", "eval.limit=7")
    assert data["jobs"]["finetune"]["inputs"]["base_model"] == {"type": "uri_folder", "path": str(model)}
    assert data["jobs"]["validate_data"]["inputs"]["base_model"]["path"] == str(model)
    assert data["jobs"]["finetune"]["inputs"]["merge"] is True
    assert data["jobs"]["evaluate"]["inputs"]["limit"] == 7


def test_a_registry_model_is_an_mlflow_model_input(tmp_path):
    uri = "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/14"
    data = _doc(tmp_path, None, f"model.name={uri}")
    assert data["jobs"]["finetune"]["inputs"]["base_mlflow_model"] == {"type": "mlflow_model", "path": uri}
    assert "base_model" not in data["jobs"]["validate_data"]["inputs"]


def test_builtin_model_binds_nothing_and_keeps_the_recipe_merge(tmp_path):
    data = _doc(tmp_path, None, "output.merge=false")
    assert not {"base_model", "base_mlflow_model", "merge"} & set(data["jobs"]["finetune"]["inputs"])


def test_maap_target_sets_compute_nodes_processes_and_an_environment_component(tmp_path):
    target = MaapTarget(compute="gpus", cpu_compute="cpus", instance_count=3, processes_per_instance=8,
                        instance_type="Standard_ND96asr_v4", environment="azureml:my-env:2", tags={"k": "v"})
    data = _doc(tmp_path, target)
    assert data["settings"]["default_compute"] == "azureml:gpus"
    finetune = data["jobs"]["finetune"]
    assert finetune["resources"] == {"instance_count": 3, "instance_type": "Standard_ND96asr_v4"}
    assert finetune["distribution"] == {"type": "pytorch", "process_count_per_instance": 8}
    assert {job.get("compute") for name, job in data["jobs"].items() if name != "finetune"} == {"azureml:cpus"}
    assert "compute" not in finetune
    assert data["tags"]["k"] == "v" and data["tags"]["phitune.method"] == "lora"
    import yaml

    component = yaml.safe_load(Path(finetune["component"]).read_text())
    original = yaml.safe_load((REPO / "components" / "finetune.yml").read_text())
    assert component["environment"] == "azureml:my-env:2"
    assert component["command"] == original["command"] and component["inputs"] == original["inputs"]
    assert Path(component["code"]) == (REPO / "src").resolve()


def test_steps_run_in_dependency_order():
    pipeline = load_pipeline(PIPELINE)
    order = [n.name for n in pipeline.ordered_jobs()]
    assert order[:3] == ["validate_data", "finetune", "evaluate"]


def test_render_command_drops_optional_blocks_quotes_values_and_spells_booleans_like_azure():
    command = "run ${{inputs.a}} $[[--b ${{inputs.b}}]] $[[--c ${{inputs.c}}]] --out ${{outputs.o}}"
    assert render_command(command, {"a": "x y", "b": None, "c": True}, {"o": "/out"}) == "run 'x y' --c True --out /out"
    with pytest.raises(SubmitError):
        render_command(command, {"a": None}, {"o": "/out"})


def test_workspace_comes_from_spec_then_config_json_then_environment(tmp_path, monkeypatch):
    from phitune.targets.workspace import ENV_VARS, find_workspace

    monkeypatch.chdir(tmp_path)
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    assert find_workspace() is None
    for var, value in zip(ENV_VARS, ("s-env", "rg-env", "ws-env")):
        monkeypatch.setenv(var, value)
    assert find_workspace().name == "ws-env"
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(json.dumps(
        {"subscription_id": "s-cfg", "resource_group": "rg-cfg", "workspace_name": "ws-cfg"}))
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_workspace(start=nested).name == "ws-cfg"
    spec = WorkspaceSpec(subscription="s", resource_group="rg", name="ws-spec")
    assert find_workspace(spec, start=nested).arm_id.endswith("/workspaces/ws-spec")
    (tmp_path / ".azureml" / "config.json").write_text('{"workspace_name": "x"}')
    with pytest.raises(SubmitError, match="unreadable workspace config"):
        find_workspace(start=nested)


def test_switching_target_type_drops_the_old_fields_and_applies_target_overrides():
    from phitune.targets.submit import with_target

    recipe = load_recipe(RECIPE, overrides=["target.type=maas", "target.model=Phi-4-mini-instruct"])
    same = with_target(recipe, "maas")
    assert same.target.model == "Phi-4-mini-instruct"
    switched = with_target(recipe, "maap", ["target.compute=big", "target.instance_count=4"])
    assert switched.target.type == "maap" and switched.target.compute == "big" and switched.target.instance_count == 4


def test_unknown_target_is_a_submit_error():
    from phitune.targets.base import target_class

    with pytest.raises(SubmitError, match="unknown target"):
        target_class("cloud9")


def test_maas_hyperparameters_are_mapped_from_the_recipe_as_strings():
    from phitune.targets.maas import hyperparameters

    recipe = load_recipe(RECIPE, overrides=["train.epochs=2", "train.lr=1e-4", "train.batch_size=2"])
    assert hyperparameters(recipe) == {"num_train_epochs": "2", "learning_rate": "0.0001",
                                       "per_device_train_batch_size": "2"}


def test_maas_model_names_resolve_to_registry_uris():
    from phitune.targets.maas_rules import resolve_model

    latest = "azureml://registries/azureml/models/Phi-3.5-MoE-instruct/labels/latest"
    assert resolve_model("Phi-3.5-MoE-instruct", "m") == (latest, [])
    assert resolve_model("microsoft/Phi-3.5-MoE-instruct", "m") == (latest, [])
    pinned = "azureml://registries/azureml/models/Phi-3-medium-128k-instruct/versions/7"
    assert resolve_model(pinned, "m") == (pinned, [])
    assert resolve_model("microsoft/phi-2", "m")[1][0].location == "m"


def test_validation_split_is_seeded_and_disjoint(tmp_path):
    from phitune.targets.maas_rules import split_validation

    train = tmp_path / "t.jsonl"
    train.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(50)))
    a = [p.read_text() for p in split_validation(str(train), 0.2, 3, tmp_path / "a")]
    b = [p.read_text() for p in split_validation(str(train), 0.2, 3, tmp_path / "b")]
    assert a == b and len(a[1].splitlines()) == 10 and not set(a[0].splitlines()) & set(a[1].splitlines())


def test_redact_removes_sas_tokens_bearer_tokens_jwts_and_keys():
    text = ("GET https://acct.blob.core.windows.net/c/x.jsonl?sv=2024-01-01&sp=r&sig=abc%2Bdef ok; "
            "Authorization: Bearer eyJhbGciOi.eyJhdWQiOi.sig; DefaultEndpointsProtocol=https;AccountKey=k3y==;")
    out = redact(text)
    assert "abc%2Bdef" not in out and "eyJhdWQiOi" not in out and "k3y==" not in out
    assert "https://acct.blob.core.windows.net/c/x.jsonl" in out


def test_maap_and_the_registry_pipeline_take_the_same_remote_data_locations(tmp_path):
    """Every Azure ML input location (abfss://, wasbs://, http(s)://, azureml:) passes both checks;
    a local path that does not exist is named by both."""
    from phitune.recipe import load_recipe
    from phitune.targets.maap import MaapRunner

    for trainer in ("phitune", "azureml"):
        recipe = load_recipe({"data": {"train": "abfss://data@account.dfs.core.windows.net/train.jsonl",
                                       "validation": str(tmp_path / "missing.jsonl")},
                              "target": {"type": "maap", "compute": "gpu", "trainer": trainer}})
        problems = MaapRunner(recipe.target, tmp_path, None).check(recipe)
        assert [(p.location, p.message) for p in problems if p.location.startswith("data.")] == [
            ("data.validation", f"{tmp_path / 'missing.jsonl'} does not exist")], trainer
