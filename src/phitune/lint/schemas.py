"""Keys Azure ML accepts in each kind of YAML (azure-ai-ml 1.35 schemas; tests/contract/
test_aml_lint.py checks these tables against azure-ai-ml's own marshmallow schemas).
azure-ai-ml ignores unknown keys in several places offline, and Azure then drops or rejects them."""

from __future__ import annotations

COMMAND_COMPONENT = {
    "$schema", "additional_includes", "auto_delete_setting", "code", "command", "description", "display_name",
    "distribution", "environment", "id", "inputs", "is_deterministic", "name", "outputs", "properties",
    "queue_settings", "resources", "tags", "type", "version",
}
PIPELINE_JOB = {
    "$schema", "component", "compute", "description", "display_name", "experiment_name", "identity", "inputs",
    "jobs", "name", "outputs", "properties", "services", "settings", "tags", "type",
}
PIPELINE_SETTINGS = {"continue_on_step_failure", "default_compute", "default_datastore", "force_rerun",
                     "on_init", "on_finalize"}
# A command node in a pipeline (plus the identity fields every node takes).
PIPELINE_NODE = {
    "code", "command", "comment", "component", "compute", "distribution", "environment",
    "environment_variables", "identity", "inputs", "limits", "outputs", "properties", "queue_settings",
    "resources", "services", "type", "display_name", "description", "tags", "name",
}
FINETUNING_JOB = {
    "$schema", "compute", "description", "display_name", "experiment_name", "hyperparameters", "identity", "model",
    "model_provider", "name", "outputs", "properties", "queue_settings", "resources", "services", "tags", "task",
    "training_data", "type", "validation_data",
}
ENVIRONMENT = {
    "$schema", "auto_delete_setting", "build", "conda_file", "datastore", "description", "id", "image",
    "inference_config", "name", "os_type", "tags", "version",
}
ENVIRONMENT_BUILD = {"dockerfile_path", "path"}
AML_COMPUTE = {
    "$schema", "description", "enable_node_public_ip", "identity", "idle_time_before_scale_down", "location",
    "max_instances", "min_instances", "name", "network_settings", "resource_id", "size", "ssh_public_access_enabled",
    "ssh_settings", "tags", "tier", "type",
}
COMPONENT_PARAMETER = {"default", "description", "enum", "max", "min", "optional", "type"}
COMPONENT_PORT = {"default", "description", "mode", "optional", "type"}
COMPONENT_OUTPUT = {"description", "mode", "type", "is_control", "early_available"}
JOB_DATA_INPUT = {"datastore", "mode", "path", "path_on_compute", "type"}
JOB_OUTPUT = {"mode", "name", "path", "type", "version"}
DISTRIBUTION = {"process_count_per_instance", "type"}
RESOURCES = {"docker_args", "instance_count", "instance_type", "locations", "max_instance_count", "properties",
             "shm_size"}

PRIMITIVE_TYPES = {"string", "integer", "number", "boolean"}
DATA_TYPES = {"uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model"}
FINETUNING_TASKS = {"chat_completion", "text_completion", "text_classification", "question_answering",
                    "text_summarization", "token_classification", "text_translation"}
