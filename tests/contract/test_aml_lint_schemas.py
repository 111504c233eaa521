"""phitune lint's key tables agree with azure-ai-ml's own YAML schemas (so lint flags exactly the keys
azure-ai-ml would ignore), apart from the documented extras azure-ai-ml accepts elsewhere."""

from __future__ import annotations

import pytest

from phitune.lint import schemas


def _keys(schema_cls) -> set[str]:
    from azure.ai.ml.constants._common import BASE_PATH_CONTEXT_KEY

    fields = schema_cls(context={BASE_PATH_CONTEXT_KEY: "."}).fields
    return {f.data_key or name for name, f in fields.items() if not f.dump_only}


def _schema(name: str):
    import importlib

    module, _, cls = name.rpartition(".")
    return getattr(importlib.import_module(module), cls)


@pytest.mark.parametrize("table, schema, extras", [
    (schemas.COMMAND_COMPONENT, "azure.ai.ml._schema.component.command_component.CommandComponentSchema", set()),
    (schemas.PIPELINE_JOB, "azure.ai.ml._schema.pipeline.pipeline_job.PipelineJobSchema", {"$schema"}),
    (schemas.PIPELINE_SETTINGS, "azure.ai.ml._schema.pipeline.settings.PipelineJobSettingsSchema",
     {"on_init", "on_finalize"}),
    (schemas.PIPELINE_NODE, "azure.ai.ml._schema.pipeline.component_job.CommandSchema",
     {"display_name", "description", "tags", "name"}),
    (schemas.FINETUNING_JOB, "azure.ai.ml._schema._finetuning.custom_model_finetuning.CustomModelFineTuningSchema",
     {"$schema"}),
    (schemas.ENVIRONMENT, "azure.ai.ml._schema.assets.environment.EnvironmentSchema", {"$schema"}),
    (schemas.ENVIRONMENT_BUILD, "azure.ai.ml._schema.assets.environment.BuildContextSchema", set()),
    (schemas.AML_COMPUTE, "azure.ai.ml._schema.compute.aml_compute.AmlComputeSchema", {"$schema"}),
    (schemas.COMPONENT_PARAMETER, "azure.ai.ml._schema.component.input_output.ParameterSchema", set()),
    (schemas.COMPONENT_PORT, "azure.ai.ml._schema.component.input_output.InputPortSchema", set()),
    (schemas.DISTRIBUTION, "azure.ai.ml._schema.job.distribution.PyTorchDistributionSchema", set()),
    (schemas.RESOURCES, "azure.ai.ml._schema.job_resource_configuration.JobResourceConfigurationSchema", set()),
    (schemas.JOB_DATA_INPUT, "azure.ai.ml._schema.job.input_output_entry.DataInputSchema", set()),
    (schemas.JOB_OUTPUT, "azure.ai.ml._schema.job.input_output_entry.OutputSchema", set()),
], ids=lambda v: v.rsplit(".", 1)[-1] if isinstance(v, str) else None)
def test_lint_tables_match_azure_ai_ml_schemas(table, schema, extras):
    assert table == _keys(_schema(schema)) | extras
