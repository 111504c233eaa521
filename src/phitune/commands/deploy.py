"""`phitune deploy JOB_ID --serverless NAME`: a serverless endpoint for a maas job's fine-tuned model."""

from __future__ import annotations

from phitune.commands.jobs import add_workspace_options, ml_client_from_args


def register(sub) -> None:
    p = sub.add_parser("deploy", help="deploy a serverless fine-tuning job's model as a serverless endpoint")
    p.add_argument("job_id", metavar="JOB_ID", help="a completed `phitune submit --target maas` job")
    p.add_argument("--serverless", required=True, metavar="NAME", help="serverless endpoint name to create")
    add_workspace_options(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from pathlib import Path

    from phitune.errors import SubmitError
    from phitune.models.run_dir import require_finished_run

    require_finished_run(Path(args.job_id), SubmitError)  # a local run folder given by mistake, unfinished
    from phitune.targets.deploy import deploy_serverless

    endpoint = deploy_serverless(ml_client_from_args(args), args.job_id, args.serverless)
    print(f"deployed: serverless endpoint {endpoint.name}")
    if getattr(endpoint, "scoring_uri", None):
        print(f"  scoring uri: {endpoint.scoring_uri}")
    print(f"  keys: az ml serverless-endpoint get-credentials -n {endpoint.name} (phitune never prints keys)")
    return 0
