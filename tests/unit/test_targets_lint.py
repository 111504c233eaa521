"""`phitune lint`: each rule fires on the YAML Azure would reject or silently drop, naming FILE:LINE: key."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from phitune import cli
from phitune.lint import lint_paths

COMPONENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
type: command
name: step
inputs:
  epochs:
    type: integer
    min: 1
    max: 10
    default: 3
  mode:
    type: string
    enum: [fast, slow]
    default: fast
  extra:
    type: number
    optional: true
  data:
    type: uri_file
outputs:
  out:
    type: uri_folder
code: .
command: >-
  python run.py --epochs ${{inputs.epochs}} --mode ${{inputs.mode}}
  $[[--extra ${{inputs.extra}}]]
  --data ${{inputs.data}} --out ${{outputs.out}}
environment: azureml:AzureML-sklearn-1.5@latest
"""

PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
inputs:
  train:
    type: uri_file
    path: ./data.jsonl
outputs:
  result:
    type: uri_folder
settings:
  default_compute: azureml:cpu
jobs:
  first:
    type: command
    component: ./step.yml
    inputs:
      data: ${{parent.inputs.train}}
      epochs: 5
    outputs:
      out: ${{parent.outputs.result}}
  second:
    type: command
    component: ./step.yml
    inputs:
      data: ${{parent.jobs.first.outputs.out}}
"""


def _lint(tmp_path: Path, component: str = COMPONENT, pipeline: str = PIPELINE):
    (tmp_path / "step.yml").write_text(component)
    (tmp_path / "pipeline.yml").write_text(pipeline)
    (tmp_path / "data.jsonl").write_text("{}\n")
    checked, problems = lint_paths([tmp_path])
    return checked, [str(p) for p in problems]


def test_clean_component_and_pipeline_pass(tmp_path):
    checked, problems = _lint(tmp_path)
    assert problems == [] and sorted(checked.values()) == ["component", "pipeline"]


@pytest.mark.parametrize("old, new, expected", [
    ("--mode ${{inputs.mode}}", "--mode ${{inputs.mood}}", "step.yml:24: command: ${{inputs.mood}} names no input"),
    ("--out ${{outputs.out}}", "--out ${{outputs.result}}", "step.yml:26: command: ${{outputs.result}} names no output"),
    ("    default: 3\n", "    default: 30\n", "step.yml:9: inputs.epochs.default: default of 'epochs' 30 is above max 10"),
    ("    default: fast\n", "    default: medium\n", "step.yml:13: inputs.mode.default: default of 'mode' 'medium' is not one of"),
    ("  $[[--extra ${{inputs.extra}}]]\n", "  --extra ${{inputs.extra}}\n",
     "step.yml:25: command: optional input 'extra' is used outside $[[...]]"),
    ("name: step\n", "name: step\ndisplayname: Step\n", "step.yml:4: displayname: unknown key 'displayname'"),
    ("    type: uri_file\n", "    type: uri_fil\n", "step.yml:18: inputs.data.type: 'uri_fil' is not one of"),
])
def test_component_rules(tmp_path, old, new, expected):
    assert old in COMPONENT
    _, problems = _lint(tmp_path, component=COMPONENT.replace(old, new))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("old, new, expected", [
    ("${{parent.inputs.train}}", "${{parent.inputs.training}}",
     "pipeline.yml:17: jobs.first.inputs.data: ${{parent.inputs.training}} names no pipeline input 'training'"),
    ("${{parent.outputs.result}}", "${{parent.outputs.results}}",
     "pipeline.yml:20: jobs.first.outputs.out: ${{parent.outputs.results}} names no pipeline output"),
    ("${{parent.jobs.first.outputs.out}}", "${{parent.jobs.frist.outputs.out}}", "names no job 'frist'"),
    ("${{parent.jobs.first.outputs.out}}", "${{parent.jobs.first.outputs.output}}", "names no output of job 'first'"),
    ("      epochs: 5\n", "      epochs: 50\n", "pipeline.yml:18: jobs.first.inputs.epochs: input 'epochs' 50 is above max 10"),
    ("      epochs: 5\n", "      epochs: two\n", "input 'epochs' 'two' is not an integer"),
    ("      epochs: 5\n", "      epoch: 5\n", "pipeline.yml:18: jobs.first.inputs.epoch: job 'first' has no input 'epoch'"),
    ("  default_compute: azureml:cpu\n", "  default_compute: azureml:cpu\n  defaut_datastore: x\n",
     "pipeline.yml:12: settings.defaut_datastore: unknown key"),
    ("    type: command\n    component: ./step.yml\n    inputs:\n      data: ${{parent.jobs",
     "    type: command\n    component: ./step.yml\n    environmnt: x\n    inputs:\n      data: ${{parent.jobs",
     "jobs.second.environmnt: unknown key 'environmnt'"),
    ("      data: ${{parent.jobs.first.outputs.out}}\n", "      mode: slow\n",
     "job 'second' does not bind required input 'data'"),
    ("    component: ./step.yml\n    inputs:\n      data: ${{parent.inputs",
     "    component: ./step.yml\n    environment: azureml:gpu-env:1\n    inputs:\n      data: ${{parent.inputs",
     "pipeline.yml:16: jobs.first.environment: azure-ai-ml drops `environment:`"),
    ("    path: ./data.jsonl", "    path: ./missing.jsonl", "pipeline.yml:6: inputs.train.path: local path ./missing.jsonl"),
])
def test_pipeline_rules(tmp_path, old, new, expected):
    assert old in PIPELINE
    _, problems = _lint(tmp_path, pipeline=PIPELINE.replace(old, new, 1))
    assert any(expected in p for p in problems), problems


def test_finetuning_job_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "train.jsonl").write_text("{}\n")
    (tmp_path / "jobs" / "ft.yml").write_text(textwrap.dedent("""\
        type: finetuning
        model_provider: custom
        task: chat
        model: {type: mlflow_model, path: azureml://registries/azureml/models/Phi-3-mini-4k-instruct/labels/latest}
        training_data: {type: uri_file, path: train.jsonl}
        hyperparameters:
          num_train_epochs: 1
        """))
    _, problems = lint_paths([tmp_path / "jobs"])
    text = "\n".join(map(str, problems))
    assert "ft.yml:3: task: 'chat' is not one of chat_completion" in text
    assert "no validation_data" in text
    monkeypatch.chdir(tmp_path / "jobs")  # beside the file and submitted from its folder: fine
    (tmp_path / "jobs" / "ft.yml").write_text((tmp_path / "jobs" / "ft.yml").read_text().replace("task: chat\n",
                                              "task: chat_completion\n"))
    _, problems = lint_paths(["."])
    text = "\n".join(map(str, problems))
    assert "ft.yml:7: hyperparameters.num_train_epochs: expected a string, got 1" in text
    assert "train.jsonl" not in text


def test_cli_exits_2_with_locations_and_0_when_clean(tmp_path, capsys):
    (tmp_path / "step.yml").write_text(COMPONENT.replace("${{inputs.mode}}", "${{inputs.mood}}"))
    assert cli.main(["lint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'step.yml'}:24: command:" in err and "Traceback" not in err
    (tmp_path / "step.yml").write_text(COMPONENT)
    assert cli.main(["lint", str(tmp_path)]) == 0
    assert "ok: 1 Azure ML YAML file(s) clean (component)" in capsys.readouterr().out


def test_json_format_gives_file_line_key_message_and_fix(tmp_path, capsys):
    (tmp_path / "step.yml").write_text(COMPONENT.replace("name: step\n", "name: step\ndisplayname: Step\n"))
    assert cli.main(["lint", str(tmp_path), "--format", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["checked"] == {str(tmp_path / "step.yml"): "component"}
    assert report["problems"] == [{"file": str(tmp_path / "step.yml"), "line": 4, "yaml_key": "displayname",
                                   "message": report["problems"][0]["message"], "fix": "did you mean 'display_name'?"}]
    (tmp_path / "step.yml").write_text(COMPONENT)
    assert cli.main(["lint", str(tmp_path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == []


def test_a_path_without_azure_ml_yaml_is_an_error(tmp_path, capsys):
    (tmp_path / "conda.yml").write_text("name: x\ndependencies: [python=3.11]\n")
    assert cli.main(["lint", str(tmp_path)]) == 2
    assert f"{tmp_path}: holds no Azure ML YAML" in capsys.readouterr().err
    assert cli.main(["lint", str(tmp_path / "missing")]) == 2


STANDALONE = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
command: python train.py --lr ${{inputs.lr}} --out ${{outputs.model}}
environment: azureml:AzureML-sklearn-1.5@latest
compute: azureml:cpu-cluster
inputs:
  lr: 1e-3
outputs:
  model:
    type: uri_folder
    path: azureml://datastores/${{default_datastore}}/paths/${{name}}/${{output_name}}
"""


def test_standalone_command_job_is_linted_and_templates_and_1e_3_are_valid(tmp_path):
    (tmp_path / "job.yml").write_text(STANDALONE)
    assert lint_paths([tmp_path]) == ({tmp_path / "job.yml": "command"}, [])
    (tmp_path / "job.yml").write_text(STANDALONE.replace("compute:", "comptue:"))
    _, problems = lint_paths([tmp_path])
    assert [p.location for p in problems] == [f"{tmp_path / 'job.yml'}:5: comptue"]


INLINE_PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
settings:
  default_compute: azureml:cpu
inputs:
  raw:
    type: uri_file
    path: https://example.com/data.csv
jobs:
  prep:
    type: command
    command: python prep.py --in ${{inputs.raw}} --lr ${{inputs.lr}} --out ${{outputs.clean}}
    environment: azureml:AzureML-sklearn-1.5@latest
    inputs:
      raw: ${{parent.inputs.raw}}
      lr: 1e-3
    outputs:
      clean:
        type: uri_folder
  train:
    type: command
    command: python train.py --data ${{inputs.data}}
    environment: azureml:AzureML-sklearn-1.5@latest
    inputs:
      data: ${{parent.jobs.prep.outputs.clean}}
"""


def test_inline_pipeline_jobs_are_anonymous_components(tmp_path):
    """An inline job keeps its own environment, inputs and outputs: nothing to report."""
    (tmp_path / "pipeline.yml").write_text(INLINE_PIPELINE)
    assert lint_paths([tmp_path]) == ({tmp_path / "pipeline.yml": "pipeline"}, [])
    (tmp_path / "pipeline.yml").write_text(INLINE_PIPELINE.replace("outputs.clean}}\n", "outputs.cleaned}}\n", 1))
    _, problems = lint_paths([tmp_path])
    assert [str(p).split(" (")[0] for p in problems] == [
        f"{tmp_path / 'pipeline.yml'}:12: jobs.prep.command: ${{{{outputs.cleaned}}}} names no outputs entry 'cleaned'"]


def test_integer_input_rejects_a_fraction_number_input_takes_1e_3(tmp_path):
    component = COMPONENT.replace("    type: number\n    optional: true\n",
                                  "    type: number\n    default: 1e-3\n    optional: true\n")
    _, problems = _lint(tmp_path, component=component)
    assert problems == []
    _, problems = _lint(tmp_path, component=component, pipeline=PIPELINE.replace("epochs: 5", "epochs: 2.5"))
    assert any("pipeline.yml:18: jobs.first.inputs.epochs: input 'epochs' 2.5 is not an integer" in p for p in problems)


@pytest.mark.parametrize("body", [
    "type: command\ncommand: 3\nenvironment: x\ninputs: [a, b]\noutputs: x\n",
    "type: pipeline\njobs: [1, 2]\ninputs: 3\n",
    "type: pipeline\njobs:\n  a: 3\n  b:\n    type: command\n    inputs: [1]\n    outputs: 2\n    component: 5\n",
    "type: sweep\ntrial:\n  command: [1]\nsearch_space: [1]\n",
    "type: finetuning\nmodel_provider: custom\ntask: chat_completion\nhyperparameters: [1]\ntraining_data: 3\n",
    "type: command\nname: c\nversion: 1\ninputs:\n  b: {type: integer, min: x, max: [1], default: {a: 1}}\n"
    "command: echo hi\nenvironment: x\n",
], ids=["command", "pipeline-list", "pipeline-nodes", "sweep", "finetuning", "component"])
def test_malformed_shapes_are_problems_not_tracebacks(tmp_path, body, capsys):
    (tmp_path / "x.yml").write_text(body)
    assert cli.main(["lint", str(tmp_path / "x.yml")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'x.yml'}:" in err and "Traceback" not in err and "could not check" not in err
