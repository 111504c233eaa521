"""maap submissions through the real azure-ai-ml code path, Azure faked at the HTTP level."""

from __future__ import annotations

import json

import pytest
import responses

import phitune
from conftest import EXAMPLES
from fake_azure import BLOB, FakeAzure, ml_client
from phitune.recipe import load_recipe
from phitune.recipe.target import MaapTarget

RECIPE = EXAMPLES / "recipes" / "tiny-lora.yaml"
TARGET = MaapTarget(compute="a100-cluster", cpu_compute="cpu-cluster", instance_count=2, processes_per_instance=4,
                    instance_type="Standard_NC96ads_A100_v4", environment="azureml:phitune-train-gpu:3",
                    experiment="exp-maap", tags={"team": "nlp"})


@pytest.fixture
def recipe(tiny_model_dir):
    return load_recipe(RECIPE, overrides=[f"model.name={tiny_model_dir}", "output.merge=false"])


def _submit(recipe, tmp_path, **kwargs):
    with FakeAzure() as az:
        handle = phitune.submit(recipe, target=TARGET, ml_client=ml_client(), output_dir=tmp_path / "out", **kwargs)
    return az, handle


@pytest.mark.slow  # builds the tiny model and uploads the code snapshot through azure-ai-ml
def test_maap_submit_sends_the_pipeline_with_compute_nodes_processes_environment_and_uploads(recipe, tmp_path):
    az, handle = _submit(recipe, tmp_path)
    (body,) = az.job_bodies()
    props = body["properties"]
    assert props["jobType"] == "Pipeline"
    assert props["experimentName"] == "exp-maap"
    assert props["tags"]["team"] == "nlp" and props["tags"]["phitune.method"] == "lora"
    assert props["settings"]["default_compute"].endswith("/computes/a100-cluster")
    finetune = props["jobs"]["finetune"]
    assert finetune["resources"] == {"instance_count": 2, "instance_type": "Standard_NC96ads_A100_v4"}
    assert finetune["distribution"] == {"distribution_type": "PyTorch", "process_count_per_instance": 4}
    # The finetune component is registered with the requested environment (a node-level
    # `environment:` would be dropped by azure-ai-ml, so phitune puts it in the component).
    specs = [c[2]["properties"]["componentSpec"] for c in az.calls if c[0] == "PUT" and "/components/" in c[1]]
    train_spec = next(spec for spec in specs if " phitune.cli train " in spec["command"])
    assert train_spec["environment"].endswith("/environments/phitune-train-gpu/versions/3")
    assert props["jobs"]["validate_data"]["computeId"].endswith("/computes/cpu-cluster")
    assert props["jobs"]["evaluate"]["computeId"].endswith("/computes/cpu-cluster")

    inputs = props["inputs"]
    for name, filename in (("recipe", "resolved_recipe.json"), ("train_data", "reviews-train.jsonl"),
                           ("validation_data", "reviews-heldout.jsonl"), ("eval_data", "reviews-heldout.jsonl")):
        assert inputs[name]["jobInputType"] == "uri_file"
        assert inputs[name]["uri"].startswith("azureml://datastores/workspaceblobstore/paths/LocalUpload/")
        assert inputs[name]["uri"].endswith("/" + filename)
    # The local base model folder is uploaded and bound to finetune; merged/ lets evaluate run without it.
    base = finetune["inputs"]["base_model"]
    assert base["job_input_type"] == "uri_folder" and "/LocalUpload/" in base["uri"]
    assert finetune["inputs"]["merge"] == {"value": "True", "job_input_type": "literal"}
    # The uploaded recipe is the resolved recipe, byte for byte.
    blob_puts = {url.split("?")[0]: data for method, url, data in az.calls if method == "PUT" and url.startswith(BLOB) and "comp=" not in url}
    sent_recipe = next(data for url, data in blob_puts.items() if url.endswith("/resolved_recipe.json"))
    assert sent_recipe["content_hash"][:12] == props["tags"]["phitune.recipe_hash"]
    assert sent_recipe["recipe"]["train"] == recipe.to_dict()["train"]
    assert sent_recipe["recipe"]["target"]["type"] == "maap"
    assert any(url.endswith("/reviews-train.jsonl") for url in blob_puts)
    assert any(url.endswith("/model.safetensors") for url in blob_puts)
    # The three components were registered from components/*.yml with phitune's own CLI commands.
    assert {"data", "eval", "train"} <= {spec["command"].split()[3] for spec in specs}
    assert f"/jobs/{handle.id}?" in az.requests_to("PUT", "/jobs/")[0][1]
    assert handle.url.startswith("https://ml.azure.com/runs/")


@pytest.mark.slow  # a dry run, then the same submit through azure-ai-ml to compare bodies
def test_maap_dry_run_makes_no_http_call_and_writes_the_body_a_submit_sends(recipe, tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:  # any call would raise
        dry = phitune.submit(recipe, target=TARGET, dry_run=True, output_dir=tmp_path / "dry")
        assert len(mock.calls) == 0
    assert (tmp_path / "dry" / "job.yml").is_file()
    request = json.loads((tmp_path / "dry" / "request.json").read_text())
    assert request == dry.request and request["method"] == "PUT"
    az, _ = _submit(recipe, tmp_path)
    (sent,) = az.job_bodies()
    expected, actual = _comparable(request["body"]), _comparable(sent)
    assert actual == expected


def _comparable(body: dict) -> dict:
    """The body without what only the service assigns (component ids, environment ids) and git props."""
    props = json.loads(json.dumps(body["properties"]))
    props.pop("properties", None)
    for node in props["jobs"].values():
        node.pop("componentId", None)
        node.pop("environment", None)
    for key in ("default_compute",):
        props["settings"][key] = props["settings"][key].rsplit("/", 1)[-1]
    for node in props["jobs"].values():
        if "computeId" in node:
            node["computeId"] = node["computeId"].rsplit("/", 1)[-1]
    return props


def test_maap_dry_run_of_a_builtin_model_recipe_sends_nothing_and_says_what_it_would(tmp_path, capsys):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        dry = phitune.submit(load_recipe(RECIPE), target=TARGET, dry_run=True, output_dir=tmp_path, progress=print)
        assert len(mock.calls) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing sent" in out and "2 node(s) x 4 process(es)" in out
    assert dry.request["url"].endswith(f"/jobs/{dry.request['url'].rsplit('/', 1)[-1]}")
    jobs = dry.request["body"]["properties"]["jobs"]
    assert "base_model" not in jobs["finetune"]["inputs"]  # builtin:tiny-phi3 is built on the node
    assert (tmp_path / "components" / "finetune.yml").is_file()  # the finetune component with target.environment


def test_maap_sends_target_properties_on_phitunes_own_pipeline_too(tmp_path):
    target = TARGET.model_copy(update={"properties": {"my_property": "my_value"}})
    dry = phitune.submit(load_recipe(RECIPE), target=target, dry_run=True, output_dir=tmp_path)
    assert dry.request["body"]["properties"]["properties"]["my_property"] == "my_value"
