"""`phitune status|logs|download|cancel JOB_ID`: follow a submitted job, whatever its target.

The job handle is what `phitune submit` prints: an Azure ML job name (maap, maas; the default), a KAITO
Workspace name with `--target kaito [--namespace NS] [--context CTX]`, or a local run folder.
"""

from __future__ import annotations

from pathlib import Path

from phitune.recipe.target import REMOTE_TARGET_TYPES


def add_workspace_options(p) -> None:
    g = p.add_argument_group("workspace (default: config.json, then AZURE_SUBSCRIPTION_ID / "
                             "AZURE_RESOURCE_GROUP / AZUREML_WORKSPACE_NAME)")
    g.add_argument("--subscription", default=None)
    g.add_argument("--resource-group", default=None)
    g.add_argument("--workspace", default=None, help="workspace name")


def ml_client_from_args(args):
    from phitune.errors import Problem, SubmitError
    from phitune.recipe.target import WorkspaceSpec
    from phitune.targets.workspace import make_ml_client

    given = [args.subscription, args.resource_group, args.workspace]
    if any(given) and not all(given):
        raise SubmitError("incomplete workspace options", [Problem(
            "--subscription/--resource-group/--workspace", "give all three, or none (to use config.json)")])
    spec = WorkspaceSpec(subscription=given[0], resource_group=given[1], name=given[2]) if all(given) else None
    return make_ml_client(spec)


def register(sub) -> None:
    for name, help_text, handler in (
        ("status", "show the status of a submitted job (or a local run, pipeline or dry-run folder)", run_status),
        ("logs", "stream a job's logs until it finishes (or print a local pipeline's step logs)", run_logs),
        ("download", "download a job's outputs and logs", run_download),
        ("cancel", "cancel a running job (Azure ML; KAITO: delete the Workspace)", run_cancel),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("job_id", metavar="JOB_ID", help="the job printed by `phitune submit`: an Azure ML job name, a "
                                                         "KAITO Workspace name (--target kaito) or a local folder")
        p.add_argument("--target", choices=REMOTE_TARGET_TYPES, default=None,
                       help="where the job runs (default: Azure ML, maap or maas)")
        if name == "download":
            p.add_argument("--output", default=None, metavar="DIR", help="where to download (default ./JOB_ID)")
        add_workspace_options(p)
        add_kubernetes_options(p)
        p.set_defaults(handler=handler)


def add_kubernetes_options(p) -> None:
    g = p.add_argument_group("kubernetes (--target kaito; default: the kubeconfig's current context and its namespace)")
    g.add_argument("--namespace", default=None)
    g.add_argument("--context", default=None, help="kubeconfig context")


def _kaito(args):
    """The KAITO Workspace handle, when --target kaito."""
    if getattr(args, "target", None) != "kaito":
        return None
    from phitune.targets.kaito import KaitoJobHandle
    from phitune.targets.kaito_client import connect

    return KaitoJobHandle(connect(args.context, args.namespace, field="--context"), args.job_id)


def _local(job_id: str) -> Path | None:
    path = Path(job_id)
    return path if path.is_dir() else None


def _handle(args):
    from phitune.targets.handles import AzureJobHandle

    return AzureJobHandle(ml_client_from_args(args), args.job_id)


def run_status(args) -> int:
    kaito = _kaito(args)
    if kaito is not None:
        print(f"{kaito.status()}: {kaito.id}")
        for line in kaito.conditions:
            print(f"  {line}")
        return 0
    local = _local(args.job_id)
    if local is not None:
        from phitune.targets.handles import local_folder_status

        state, meaning = local_folder_status(local)
        print(f"{state}: {local}")
        print(f"  {meaning}")
        return 0
    handle = _handle(args)
    print(f"{handle.status()}: {handle.id}")
    if handle.url:
        print(f"  url: {handle.url}")
    return 0


def run_logs(args) -> int:
    kaito = _kaito(args)
    if kaito is not None:
        pod, text = kaito.logs()
        if pod is None:
            print(f"no tuning pod yet for {kaito.id} ({kaito.status()}): `phitune status {kaito.id} --target kaito` "
                  "shows why")
        else:
            print(f"==> pod {pod} <==")
            print(text, end="" if text.endswith("\n") else "\n")
        return 0
    local = _local(args.job_id)
    if local is not None:
        from phitune.targets.handles import step_logs_in_order

        logs = step_logs_in_order(local)
        for log in logs:
            print(f"==> {log} <==")
            print(log.read_text(encoding="utf-8", errors="replace"))
        if not logs:
            print(f"no step logs under {local} (a local run prints to the terminal)")
        return 0
    from phitune.targets.azure_errors import azure_call

    client = ml_client_from_args(args)
    with azure_call(f"streaming logs of job {args.job_id}"):
        client.jobs.stream(args.job_id)
    return 0


def run_download(args) -> int:
    from phitune.targets.handles import LocalRunHandle

    dest = Path(args.output or Path(args.job_id).name)
    kaito = _kaito(args)
    if kaito is not None:
        kaito.download(dest)
    local = _local(args.job_id)
    handle = LocalRunHandle(local) if local is not None else _handle(args)
    path = handle.download(dest)
    print(f"downloaded {args.job_id} to {path}")
    return 0


def run_cancel(args) -> int:
    from phitune.errors import Problem, SubmitError
    from phitune.targets.azure_errors import azure_call

    kaito = _kaito(args)
    if kaito is not None:
        kaito.cancel()
        print(f"cancelled: Workspace {kaito.id} deleted (with its tuning job) from namespace {kaito.cluster.namespace}")
        return 0
    if _local(args.job_id) is not None:
        raise SubmitError("nothing to cancel", [Problem(args.job_id, "a local run is not a job", "press Ctrl-C in its terminal")])
    client = ml_client_from_args(args)
    with azure_call(f"cancelling job {args.job_id}"):
        client.jobs.begin_cancel(args.job_id).result()
    print(f"cancel requested: {args.job_id}")
    return 0
