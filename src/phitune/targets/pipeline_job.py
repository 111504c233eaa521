"""A pipeline job YAML written to disk and loaded back with azure-ai-ml, for both `maap` trainers
(phitune's pipeline, phitune.targets.maap; Azure ML's registry component, phitune.targets.registry_pipeline).

job.yml never holds a SAS signature (sig=REDACTED); the loaded job object gets the real data URLs
back, since it is what is sent.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import yaml

from phitune.errors import Problem, SubmitError


def job_name(recipe_name: str) -> str:
    """A unique Azure job name that still says which recipe it ran."""
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", recipe_name)[:40]
    return f"phitune-{stem}-{secrets.token_hex(4)}"


def load_pipeline_job(job_file: Path):
    """`load_job` + client-side validation; problems leave as one SubmitError naming the YAML keys."""
    from azure.ai.ml import load_job

    from phitune.compat import aml_validate
    from phitune.targets.azure_errors import azure_call

    with azure_call(f"loading {job_file}"):
        job = load_job(job_file)
    result = aml_validate(job)  # what `az ml job validate` checks offline
    if not result.passed:
        problems = [Problem(f"{job_file}: {key}", str(msg)) for key, msg in result.error_messages.items()]
        raise SubmitError(f"the pipeline job does not validate ({job_file})", problems)
    return job


def job_yaml_text(data: dict) -> str:
    """job.yml with secrets redacted; a note says how to submit it by hand when a SAS input lost its signature."""
    from phitune.redact import redact_data

    public = redact_data(data)
    text = yaml.safe_dump(public, sort_keys=False, width=120)
    if public != data:
        text = ("# SAS signatures are not written to disk (sig=REDACTED): put yours back in the inputs below before\n"
                "# `az ml job create -f job.yml`; `phitune submit` sends them from the recipe.\n" + text)
    return text


def restore_secret_inputs(job, data: dict) -> None:
    """job.yml holds redacted SAS URLs: the job object sends the real ones, as its data inputs only."""
    from phitune.compat import aml_input_data
    from phitune.redact import redact

    for name, spec in (data.get("inputs") or {}).items():
        path = spec.get("path") if isinstance(spec, dict) else None
        if isinstance(path, str) and redact(path) != path and name in job.inputs:
            aml_input_data(job.inputs[name]).path = path
