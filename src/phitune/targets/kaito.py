"""`kaito`: fine-tune on Kubernetes with KAITO (the Kubernetes AI Toolchain Operator).

The recipe becomes a ConfigMap holding KAITO's `training_config.yaml` (phitune.targets.kaito_config)
and a `kaito.sh/v1beta1` Workspace with a `tuning:` section (kaito_manifest). Both are checked offline
against phitune's description of KAITO's Workspace schema and its admission rules (kaito_schema) before
anything is written; `--dry-run` writes them to `OUTPUT/kaito.yaml` (`kubectl apply -f` ready), a submit applies them
with the Kubernetes API (kaito_client). The job handle is the Workspace: `phitune status|logs|cancel
NAME --target kaito [--namespace NS] [--context CTX]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from phitune.errors import Problem, SubmitError
from phitune.recipe.method import PHI3_LORA_TARGETS
from phitune.targets import kaito_config, kaito_manifest, kaito_presets, kaito_schema
from phitune.targets.assets import default_output_dir
from phitune.targets.base import Runner
from phitune.targets.handles import DryRunHandle, wait_for_terminal_status
from phitune.targets.report import Progress, Submission, SubmitLog

MANIFEST_FILE = "kaito.yaml"


class KaitoRunner(Runner):
    def check(self, recipe) -> list[Problem]:
        problems = kaito_config.recipe_problems(recipe, self.spec)
        preset, preset_problems = kaito_presets.resolve_preset(recipe.model.name)
        problems += preset_problems
        if preset is not None:
            problems += kaito_presets.lora_targets(preset, recipe.method.target_modules, PHI3_LORA_TARGETS)[1]
            if recipe.model.revision and recipe.model.revision != preset.revision:
                problems.append(Problem("model.revision", f"KAITO's {preset.name} image holds revision "
                                        f"{preset.revision} of {preset.hf_repo}", "remove model.revision"))
        if not problems:
            problems += kaito_schema.check_manifests(*self.manifests(recipe, self.spec.namespace),
                                                     kaito_presets.tuning_presets())
        return problems

    def manifests(self, recipe, namespace: str | None) -> tuple[dict, dict]:
        """(ConfigMap, Workspace) for `recipe`; `namespace` None leaves it to kubectl's context."""
        preset, problems = kaito_presets.resolve_preset(recipe.model.name)
        if problems:
            raise SubmitError("the recipe cannot run on KAITO", problems)
        targets, problems = kaito_presets.lora_targets(preset, recipe.method.target_modules, PHI3_LORA_TARGETS)
        if problems:
            raise SubmitError("the recipe cannot run on KAITO", problems)
        name = kaito_manifest.workspace_name(recipe, self.spec)
        config = kaito_config.training_config(recipe, preset, targets)
        config_map = kaito_manifest.configmap(kaito_manifest.configmap_name(name), namespace,
                                              kaito_manifest.dump_yaml(config), recipe.content_hash())
        return config_map, kaito_manifest.workspace(recipe, self.spec, name, namespace, preset.name)

    def submit(self, recipe, dry_run: bool = False, progress: Progress | None = None) -> Submission:
        log = SubmitLog(progress)
        out = Path(self.output_dir or default_output_dir(recipe.name, self.name)).resolve()
        cluster = None
        if not dry_run:
            from phitune.targets.kaito_client import connect

            cluster = connect(self.spec.context, self.spec.namespace)
        config_map, workspace = self.manifests(recipe, cluster.namespace if cluster else self.spec.namespace)
        problems = kaito_schema.check_manifests(config_map, workspace, kaito_presets.tuning_presets())
        if problems:
            raise SubmitError("the KAITO manifests would be refused", problems)
        out.mkdir(parents=True, exist_ok=True)
        manifest = out / MANIFEST_FILE
        manifest.write_text(kaito_manifest.dump_manifests(config_map, workspace))
        log.wrote(manifest)
        name = workspace["metadata"]["name"]
        log.say(f"KAITO Workspace {name} (preset {workspace['tuning']['preset']['name']}, method "
                f"{workspace['tuning']['method']}): {manifest}")
        if dry_run:
            return log.done(KaitoDryRunHandle(out, {"manifest": str(manifest)}, manifest))
        from phitune.targets.kaito_client import apply

        apply(cluster, config_map, workspace)
        return log.done(KaitoJobHandle(cluster, name))


@dataclass
class KaitoDryRunHandle(DryRunHandle):
    """Nothing was sent: `manifest` is the ConfigMap + Workspace YAML a submit would apply."""

    manifest: Path

    @property
    def url(self) -> str:
        return self.manifest.as_uri()


def workspace_status(obj: dict) -> tuple[str, list[str]]:
    """(status, condition lines) of a tuning Workspace, in the statuses phitune uses for every target:
    Preparing (nodes / job not started), Running, Completed, Failed."""
    conditions = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
    lines = [f"{t}={c.get('status')} ({c.get('reason', '')}): {c.get('message', '')}" for t, c in conditions.items()]
    succeeded, job = conditions.get("WorkspaceSucceeded", {}), conditions.get("JobStarted", {})
    if succeeded.get("status") == "True":
        return "Completed", lines
    if "Failed" in str(job.get("reason", "")) or str(succeeded.get("reason", "")).lower().endswith("failed"):
        return "Failed", lines
    if job.get("status") == "True":
        return "Running", lines
    return "Preparing", lines


@dataclass
class KaitoJobHandle:
    """A submitted KAITO Workspace; its conditions are the job's status."""

    cluster: object
    name: str
    poll_seconds: float = 30.0
    conditions: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        from phitune.targets.kaito_manifest import GROUP, PLURAL, VERSION

        return f"{self.cluster.host}/apis/{GROUP}/{VERSION}/namespaces/{self.cluster.namespace}/{PLURAL}/{self.name}"

    def next_commands(self) -> str:
        where = f" --namespace {self.cluster.namespace}"
        if self.cluster.context:
            where += f" --context {self.cluster.context}"
        return " | ".join(f"phitune {c} {self.name} --target kaito{where}" for c in ("status", "logs", "cancel"))

    def status(self) -> str:
        from phitune.targets.kaito_client import get_workspace

        status, self.conditions = workspace_status(get_workspace(self.cluster, self.name))
        return status

    def wait(self, timeout: float | None = None) -> str:
        return wait_for_terminal_status(self.status, self.poll_seconds, timeout)

    def logs(self) -> tuple[str | None, str]:
        from phitune.targets.kaito_client import tuning_logs

        return tuning_logs(self.cluster, self.name)

    def cancel(self) -> None:
        from phitune.targets.kaito_client import delete_workspace

        delete_workspace(self.cluster, self.name)

    def download(self, directory: str | Path) -> Path:
        from phitune.targets.kaito_client import get_workspace

        output = (get_workspace(self.cluster, self.name).get("tuning") or {}).get("output") or {}
        where = (f"image {output['image']} (pull it, e.g. `oras pull` or `docker pull`)" if output.get("image") else
                 f"PersistentVolumeClaim {output.get('volumeSource', {}).get('persistentVolumeClaim', {}).get('claimName')}")
        raise SubmitError("a KAITO adapter is not downloaded through phitune", [Problem(
            self.name, f"KAITO writes the adapter to the {where}", "copy it from there")])
