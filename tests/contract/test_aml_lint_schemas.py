"""`phitune lint` against a corpus written from Azure ML's documented YAML schemas.

- tests/lint_corpus/valid/: every kind the CLI v2 accepts (jobs of each type, each distribution, inline
  and component pipeline jobs, sweep, parallel, spark, import, data transfer, automl, fine-tuning,
  components, environments, compute, models, data, datastores). azure-ai-ml loads each one offline, and
  lint must report nothing: a linter that flags valid files gets switched off.
- tests/lint_corpus/invalid/: planted mistakes, each marked on its line with `# expect: <text>` (several
  on one line are separated by ` | `). Lint must report each at exactly that FILE:LINE, and nothing else.
- The rules come from the installed azure-ai-ml: a key added to an SDK schema is accepted at once.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from conftest import REPO
from phitune.lint import check, kind_of, lint_paths
from phitune.lint.source import read_doc

CORPUS = REPO / "tests" / "lint_corpus"
VALID = CORPUS / "valid"
INVALID = CORPUS / "invalid"
EXPECT = re.compile(r"#\s*expect:\s*(.+)$")


def _expected(path: Path) -> dict[int, list[str]]:
    marks = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = EXPECT.search(line)
        if match:
            marks[number] = [text.strip() for text in match.group(1).split(" | ")]
    return marks


def _yamls(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.yml"))


def test_valid_corpus_covers_every_kind_and_lints_clean():
    checked, problems = lint_paths([VALID])
    assert [str(p) for p in problems] == []
    assert len(checked) >= 40
    assert set(checked.values()) >= {
        "command", "pipeline", "sweep", "spark", "import", "automl", "finetuning", "component",
        "pipeline_component", "parallel_component", "spark_component", "environment", "compute", "model", "data"}
    texts = "\n".join(p.read_text() for p in checked)
    for distribution in ("pytorch", "tensorflow", "mpi", "ray"):
        assert f"type: {distribution}\n" in texts
    for shape in ("type: parallel\n", "type: data_transfer\n", "trial: ./components/", "${{name}}",
                  "${{default_datastore}}", "${{search_space.", "$[[", "1e-3"):
        assert shape in texts, shape


def _loader(kind: str):
    import azure.ai.ml as aml

    return {"component": aml.load_component, "pipeline_component": aml.load_component,
            "parallel_component": aml.load_component, "spark_component": aml.load_component,
            "environment": aml.load_environment, "model": aml.load_model, "data": aml.load_data,
            "compute": aml.load_compute, "datastore": aml.load_datastore}.get(kind, aml.load_job)


@pytest.mark.slow
def test_valid_corpus_loads_with_azure_ai_ml(monkeypatch):
    """The corpus is valid by azure-ai-ml's own reading, not only by lint's."""
    monkeypatch.chdir(VALID)  # a finetuning job resolves its data paths against the working directory
    logging.getLogger("azure.ai.ml").setLevel(logging.ERROR)
    failures = []
    for path in _yamls(VALID):
        kind = kind_of(read_doc(path).data)
        if kind is None:
            continue
        try:
            loaded = _loader(kind)(path)
            if hasattr(loaded, "_validate"):
                result = loaded._validate()
                if not result.passed:
                    failures.append(f"{path.name}: {result.error_messages}")
        except Exception as err:  # noqa: BLE001 (the test reports every file that does not load)
            failures.append(f"{path.name}: {type(err).__name__}: {err}")
    assert failures == []


@pytest.mark.parametrize("path", _yamls(INVALID), ids=lambda p: p.name)
def test_each_planted_mistake_is_reported_at_its_line(path):
    expected = _expected(path)
    assert expected, f"{path.name} plants no marked mistake"
    checked, problems = lint_paths([path])
    assert checked, f"{path.name} was not recognised as an Azure ML YAML"
    found: dict[int, list[str]] = {}
    for problem in problems:
        where = problem.location.split(": ", 1)[0]
        assert where.startswith(f"{path}:"), problem
        found.setdefault(int(where.rsplit(":", 1)[1]), []).append(str(problem))
    assert sorted(found) == sorted(expected), "\n".join(map(str, problems))
    for line, texts in expected.items():
        for text in texts:
            assert any(text in message for message in found[line]), (line, text, found[line])


def test_the_invalid_corpus_plants_at_least_30_mistakes():
    assert sum(len(texts) for path in _yamls(INVALID) for texts in _expected(path).values()) >= 30


def test_rules_come_from_the_installed_azure_ai_ml(tmp_path, monkeypatch):
    """A key the SDK's schema gains is accepted, one it loses is reported: no table of keys to update."""
    from marshmallow import fields

    from phitune.lint import sdk_schemas

    job = tmp_path / "job.yml"
    job.write_text("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
                   "command: echo hi\nenvironment: azureml:env@latest\nnew_sdk_key: 1\n")
    doc = read_doc(job)
    assert [p.location for p in check(doc, "command")] == [f"{job}:4: new_sdk_key"]
    schema = sdk_schemas.schema_instance(sdk_schemas.SCHEMAS["command"][0])
    monkeypatch.setitem(schema.fields, "new_sdk_key", fields.Integer())
    assert check(doc, "command") == []
    monkeypatch.setitem(schema.fields, "new_sdk_key", fields.List(fields.Str()))
    assert [str(p) for p in check(doc, "command")] == [f"{job}:4: new_sdk_key: expected a list, got 1"]


def test_lint_picks_the_schema_whose_own_enums_accept_the_document():
    from phitune.lint import sdk_schemas

    schemas, misfit = sdk_schemas.choose("automl", {"type": "automl", "task": "text_ner"})
    assert misfit is None and [type(s).__name__ for s in schemas] == ["TextNerSchema"]
    schemas, misfit = sdk_schemas.choose("finetuning", {"model_provider": "custom", "task": "chat_completion"})
    assert [type(s).__name__ for s in schemas] == ["CustomModelFineTuningSchema"]
    _, misfit = sdk_schemas.choose("compute", {"type": "amlcluster"})
    assert misfit[0] == "type" and "amlcompute" in misfit[1]
