"""`target:` — where `phitune submit` runs the recipe. A union discriminated on `type`.

- `local`           the training core in this process
- `local-pipeline`  aml/pipelines/finetune.yml's steps as local subprocesses (what Azure runs, offline)
- `maap`            the same pipeline on your own Azure ML compute ("model as a platform")
- `maas`            Azure AI serverless fine-tuning ("model as a service")
- `kaito`           KAITO (Kubernetes AI Toolchain Operator): a tuning Workspace on your own cluster

`phitune submit --target X` picks another type; the section here holds that type's defaults.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union, get_args

from pydantic import Field, model_validator

from phitune.recipe.base import Section

# Azure resource names: letters, digits, '-', '_' (workspace and compute names are stricter still).
_AZURE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$"


class WorkspaceSpec(Section):
    """An Azure ML workspace. Without it: `config.json` (`MLClient.from_config`), then the environment
    variables AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZUREML_WORKSPACE_NAME."""

    subscription: str = Field(..., min_length=1, description="Azure subscription id.")
    resource_group: str = Field(..., min_length=1, description="Resource group of the workspace.")
    name: str = Field(..., min_length=1, pattern=_AZURE_NAME, description="Workspace name.")


class LocalTarget(Section):
    """Run the training core in this process."""

    type: Literal["local"] = "local"


class LocalPipelineTarget(Section):
    """Run the Azure ML pipeline's steps here, each as the exact command line of its component YAML."""

    type: Literal["local-pipeline"] = "local-pipeline"
    pipeline: str | None = Field(None, description="Pipeline YAML; default aml/pipelines/finetune.yml.")


class _AzureTarget(Section):
    workspace: WorkspaceSpec | None = Field(None, description="Default: config.json, then environment variables.")
    experiment: str | None = Field(None, min_length=1, description="Experiment name; default tracking.experiment.")
    display_name: str | None = Field(None, min_length=1, description="Job display name; default the recipe name.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags added to the job.")
    properties: dict[str, str] = Field(default_factory=dict, description="Properties added to the job (immutable "
                                       "once the job is created, unlike tags).")


class MaapTarget(_AzureTarget):
    """On your own Azure ML compute: phitune's pipeline (validate_data -> finetune -> evaluate), or with
    `trainer: azureml` the registry fine-tuning pipeline component for the recipe's task."""

    type: Literal["maap"] = "maap"
    trainer: Literal["phitune", "azureml"] = Field(
        "phitune", description="phitune: phitune's own components; azureml: Azure ML's registry pipeline component "
                               "for the task (e.g. chat_completion_pipeline from registry azureml).")
    component_version: str | None = Field(
        None, min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="trainer: azureml only: pin the registry component's version (default: latest, resolved at submit).")
    compute: str = Field("gpu-cluster", min_length=1, pattern=_AZURE_NAME,
                         description="Compute cluster for every step (pipeline settings.default_compute).")
    cpu_compute: str | None = Field(None, min_length=1, pattern=_AZURE_NAME,
                                    description="Cheaper compute for every step but finetune; default `compute`.")
    instance_type: str | None = Field(None, min_length=1, description="VM size for the finetune step, e.g. Standard_NC24ads_A100_v4.")
    instance_count: int = Field(1, ge=1, le=64, description="Nodes for the finetune step.")
    processes_per_instance: int = Field(1, ge=1, le=16, description="Processes per node (one per GPU), PyTorch distribution.")
    environment: str | None = Field(
        None, min_length=1, description="Environment for the finetune step, e.g. azureml:phitune-train-gpu@latest; "
                                        "default: the component's environments/train-gpu.")
    pipeline: str | None = Field(None, description="Pipeline YAML; default aml/pipelines/finetune.yml.")

    @model_validator(mode="after")
    def _azureml_only_fields(self) -> "MaapTarget":
        if self.component_version is not None and self.trainer != "azureml":
            raise ValueError("target.component_version pins the registry component of target.trainer: azureml: "
                             "set target.trainer: azureml, or remove target.component_version")
        if self.pipeline is not None and self.trainer == "azureml":
            raise ValueError("target.pipeline is phitune's pipeline YAML; target.trainer: azureml runs the registry "
                             "component instead: remove target.pipeline, or set target.trainer: phitune")
        return self


class MaasTarget(_AzureTarget):
    """Azure AI serverless fine-tuning (LoRA on a registry catalog model, billed per token)."""

    type: Literal["maas"] = "maas"
    model: str | None = Field(
        None, min_length=1,
        description="Registry model of any registry, e.g. azureml://registries/azureml-meta/models/Meta-Llama-3-8B/"
                    "versions/8 or .../labels/latest (resolved to a version at submit), or a catalog short name such as "
                    "Phi-3-mini-4k-instruct; default model.name.")
    output_model_name: str | None = Field(None, min_length=1, pattern=_AZURE_NAME,
                                          description="Name of the registered fine-tuned model; default the recipe name.")


# Kubernetes object names (RFC 1123 labels): KAITO's admission webhook requires one for a Workspace.
_K8S_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class KaitoTarget(Section):
    """A KAITO tuning Workspace plus the ConfigMap holding its training_config.yaml, applied with the
    Kubernetes API. Data comes from https URLs (`data.train`) or a PersistentVolumeClaim (`input_volume`);
    the adapter goes to a container image (`output_image` + `image_push_secret`) or a claim (`output_volume`)."""

    type: Literal["kaito"] = "kaito"
    name: str | None = Field(None, pattern=_K8S_LABEL, max_length=63,
                             description="Workspace name (the ConfigMap is NAME-tuning); default: the recipe name, lowercased.")
    namespace: str | None = Field(None, pattern=_K8S_LABEL, max_length=63,
                                  description="Namespace; default: the kubeconfig context's, else `default`.")
    context: str | None = Field(None, min_length=1, description="kubeconfig context; default: the current one "
                                "(in-cluster config when running in a pod without a kubeconfig).")
    instance_type: str | None = Field("Standard_NC24ads_A100_v4", min_length=1,
                                      description="GPU node SKU KAITO provisions; null on clusters without node "
                                                  "auto-provisioning (bring your own GPU nodes).")
    label_selector: dict[str, str] | None = Field(None, description="Labels of the GPU nodes to use "
                                                  "(resource.labelSelector.matchLabels); default {app: NAME}.")
    input_volume: str | None = Field(None, pattern=_K8S_LABEL, max_length=63,
                                     description="PersistentVolumeClaim holding data.train's file (by its file name) "
                                                 "instead of an https URL.")
    output_image: str | None = Field(None, min_length=1, description="Image the adapter is pushed to, e.g. "
                                     "myregistry.azurecr.io/phi3-adapter:0.1 (needs image_push_secret).")
    image_push_secret: str | None = Field(None, min_length=1, description="Secret in the namespace used to push output_image.")
    output_volume: str | None = Field(None, pattern=_K8S_LABEL, max_length=63,
                                      description="PersistentVolumeClaim the adapter is written to (instead of output_image).")


TargetSpec = Annotated[
    Union[LocalTarget, LocalPipelineTarget, MaapTarget, MaasTarget, KaitoTarget], Field(discriminator="type")
]
def _type_of(section: type[Section]) -> str:
    return get_args(section.model_fields["type"].annotation)[0]


# Every target name comes from the union's discriminator values (`phitune submit --target`, the runners).
TARGET_SECTIONS: tuple[type[Section], ...] = get_args(get_args(TargetSpec)[0])
TARGET_TYPES = tuple(_type_of(section) for section in TARGET_SECTIONS)
LOCAL_TARGET_TYPES = (_type_of(LocalTarget), _type_of(LocalPipelineTarget))  # run here, finished when submit returns
AZURE_TARGET_TYPES = tuple(_type_of(s) for s in TARGET_SECTIONS if issubclass(s, _AzureTarget))  # Azure ML jobs
REMOTE_TARGET_TYPES = tuple(t for t in TARGET_TYPES if t not in LOCAL_TARGET_TYPES)  # a job id to follow
