"""Which of azure-ai-ml's own marshmallow schema classes reads each kind of Azure ML YAML.

Only class names live here; every key, type, enum and range comes from the classes at run time, so an
azure-ai-ml upgrade updates lint. Where one kind has several schemas (AutoML tasks, fine-tuning model
providers, data-transfer tasks, compute, datastore and connection types), the one whose own enum fields
(`type`, `task`, `model_provider`) accept the document's values is chosen, as azure-ai-ml's loaders do.
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

_S = "azure.ai.ml._schema."
_AUTOML = [_S + "automl.table_vertical.classification.AutoMLClassificationSchema",
           _S + "automl.table_vertical.regression.AutoMLRegressionSchema",
           _S + "automl.table_vertical.forecasting.AutoMLForecastingSchema",
           _S + "automl.image_vertical.image_classification.ImageClassificationSchema",
           _S + "automl.image_vertical.image_classification.ImageClassificationMultilabelSchema",
           _S + "automl.image_vertical.image_object_detection.ImageObjectDetectionSchema",
           _S + "automl.image_vertical.image_object_detection.ImageInstanceSegmentationSchema",
           _S + "automl.nlp_vertical.text_classification.TextClassificationSchema",
           _S + "automl.nlp_vertical.text_classification_multilabel.TextClassificationMultilabelSchema",
           _S + "automl.nlp_vertical.text_ner.TextNerSchema"]

SCHEMAS: dict[str, list[str]] = {
    # jobs (`az ml job create -f`)
    "command": [_S + "job.command_job.CommandJobSchema"],
    "pipeline": [_S + "pipeline.pipeline_job.PipelineJobSchema"],
    "sweep": [_S + "_sweep.sweep_job.SweepJobSchema"],
    "parallel": [_S + "job.parallel_job.ParallelJobSchema"],
    "spark": [_S + "job.spark_job.SparkJobSchema"],
    "import": [_S + "job.import_job.ImportJobSchema"],
    "data_transfer": [_S + "job.data_transfer_job.DataTransferCopyJobSchema",
                      _S + "job.data_transfer_job.DataTransferImportJobSchema",
                      _S + "job.data_transfer_job.DataTransferExportJobSchema"],
    "automl": _AUTOML,
    "finetuning": [_S + "_finetuning.custom_model_finetuning.CustomModelFineTuningSchema",
                   _S + "_finetuning.azure_openai_finetuning.AzureOpenAIFineTuningSchema"],
    # components (`az ml component create -f`)
    "component": [_S + "component.command_component.CommandComponentSchema"],
    "pipeline_component": [_S + "pipeline.pipeline_component.PipelineComponentSchema"],
    "parallel_component": [_S + "component.parallel_component.ParallelComponentSchema"],
    "spark_component": [_S + "component.spark_component.SparkComponentSchema"],
    "import_component": [_S + "component.import_component.ImportComponentSchema"],
    "automl_component": [_S + "component.automl_component.AutoMLComponentSchema"],
    "data_transfer_component": [_S + "component.data_transfer_component.DataTransferCopyComponentSchema",
                                _S + "component.data_transfer_component.DataTransferImportComponentSchema",
                                _S + "component.data_transfer_component.DataTransferExportComponentSchema"],
    # assets and resources
    "environment": [_S + "assets.environment.EnvironmentSchema"],
    "model": [_S + "assets.model.ModelSchema"],
    "data": [_S + "assets.data.DataSchema"],
    "data_import": [_S + "_data_import.data_import.DataImportSchema"],
    "compute": [_S + "compute.aml_compute.AmlComputeSchema",
                _S + "compute.compute_instance.ComputeInstanceSchema",
                _S + "compute.virtual_machine_compute.VirtualMachineComputeSchema",
                _S + "compute.kubernetes_compute.KubernetesComputeSchema",
                _S + "compute.synapsespark_compute.SynapseSparkComputeSchema"],
    "datastore": [_S + "_datastore.azure_storage.AzureBlobSchema", _S + "_datastore.azure_storage.AzureFileSchema",
                  _S + "_datastore.azure_storage.AzureDataLakeGen2Schema",
                  _S + "_datastore.adls_gen1.AzureDataLakeGen1Schema", _S + "_datastore.one_lake.OneLakeSchema"],
    "workspace": [_S + "workspace.workspace.WorkspaceSchema"],
    "registry": [_S + "registry.registry.RegistrySchema"],
    "connection": [_S + "workspace.connections.workspace_connection.WorkspaceConnectionSchema"],
    "schedule": [_S + "schedule.schedule.JobScheduleSchema", _S + "_data_import.schedule.ImportDataScheduleSchema"],
    "online_endpoint": [_S + "_endpoint.online.online_endpoint.ManagedOnlineEndpointSchema",
                        _S + "_endpoint.online.online_endpoint.KubernetesOnlineEndpointSchema"],
    "online_deployment": [_S + "_deployment.online.online_deployment.ManagedOnlineDeploymentSchema",
                          _S + "_deployment.online.online_deployment.KubernetesOnlineDeploymentSchema"],
    "batch_endpoint": [_S + "_endpoint.batch.batch_endpoint.BatchEndpointSchema"],
    "batch_deployment": [_S + "_deployment.batch.batch_deployment.BatchDeploymentSchema"],
}

# The `type:` values and `$schema` file names of each kind, as Azure ML's published JSON schemas name them.
JOB_TYPES = {"command", "pipeline", "sweep", "parallel", "spark", "import", "data_transfer", "automl", "finetuning"}
COMPUTE_TYPES = {"amlcompute", "computeinstance", "virtualmachine", "kubernetes", "synapsespark"}
DATASTORE_TYPES = {"azure_blob", "azure_file", "azure_data_lake_gen1", "azure_data_lake_gen2", "one_lake"}
SCHEMA_FILES = {
    "commandjob": "command", "pipelinejob": "pipeline", "sweepjob": "sweep", "paralleljob": "parallel",
    "sparkjob": "spark", "importjob": "import", "datatransferjob": "data_transfer", "automljob": "automl",
    "finetuningjob": "finetuning", "commandcomponent": "component", "pipelinecomponent": "pipeline_component",
    "parallelcomponent": "parallel_component", "sparkcomponent": "spark_component",
    "importcomponent": "import_component", "datatransfercomponent": "data_transfer_component",
    "automlcomponent": "automl_component",
    "environment": "environment", "model": "model", "data": "data", "dataimport": "data_import",
    "amlcompute": "compute", "computeinstance": "compute", "vmcompute": "compute", "kubernetescompute": "compute",
    "synapsespark": "compute", "attachedspark": "compute", "azureblob": "datastore", "azurefile": "datastore",
    "azuredatalakegen1": "datastore", "azuredatalakegen2": "datastore", "onelake": "datastore",
    "workspace": "workspace", "registry": "registry", "connection": "connection", "schedule": "schedule",
    "managedonlineendpoint": "online_endpoint", "kubernetesonlineendpoint": "online_endpoint",
    "managedonlinedeployment": "online_deployment", "kubernetesonlinedeployment": "online_deployment",
    "batchendpoint": "batch_endpoint", "batchdeployment": "batch_deployment",
    "pipelinecomponentbatchdeployment": "batch_deployment",
}
DISCRIMINATORS = ("type", "task", "model_provider")


def _class(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@lru_cache(maxsize=None)
def schema_instance(dotted: str):
    """One instance per class: lint reads its fields and never loads with it, so the base path is moot."""
    from phitune.compat import aml_schema_context

    return _class(dotted)(context=aml_schema_context(Path.cwd()))


@contextmanager
def quiet_experimental():
    """Building an experimental schema (here, or lazily for a nested field) makes azure-ai-ml walk the
    whole call stack with `inspect.stack()` (about 0.2 s per schema, most of lint's time) to decide
    whether to log "This is an experimental class". Lint builds schemas, never user objects: skip both."""
    from phitune.compat import aml_experimental_warnings_skipped

    with aml_experimental_warnings_skipped():
        yield


def enum_values(schema, key: str) -> list[str] | None:
    """The values a schema's enum field (by YAML key) accepts, or None when it is not an enum."""
    from phitune.compat import aml_schema_fields

    StringTransformedEnum = aml_schema_fields().StringTransformedEnum

    for name, field in schema.fields.items():
        if (field.data_key or name) == key and isinstance(field, StringTransformedEnum):
            return list(field.allowed_values or [])
    return None


def accepts(schema, key: str, value) -> bool:
    from phitune.compat import aml_schema_fields

    StringTransformedEnum = aml_schema_fields().StringTransformedEnum

    for name, field in schema.fields.items():
        if (field.data_key or name) == key and isinstance(field, StringTransformedEnum):
            return isinstance(value, str) and field.casing_transform(value) in (field.allowed_values or [])
    return True


def choose(kind: str, data: dict):
    """([schemas] whose discriminators fit the document, None), or ([], (key, allowed values)) when a
    discriminator fits no schema. The caller keeps the candidate that reads the document best."""
    candidates = [schema_instance(name) for name in SCHEMAS[kind]]
    for key in DISCRIMINATORS:
        if key not in data:
            continue
        fitting = [s for s in candidates if accepts(s, key, data[key])]
        if not fitting:
            allowed = sorted({v for s in candidates for v in (enum_values(s, key) or [])})
            return [], (key, allowed)
        candidates = fitting
    return candidates, None
