"""Run handles: a local run folder, a dry run's output folder, or an Azure ML job."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from phitune.targets.base import TERMINAL_STATUSES


def status_text(status) -> str:
    """'Completed', not 'JobStatus.COMPLETED' (azure-ai-ml returns an enum for some job types)."""
    return str(getattr(status, "value", status))


def _copy_tree(source: Path, directory: str | Path) -> Path:
    dest = Path(directory)
    if dest.resolve() == source.resolve():
        return dest
    shutil.copytree(source, dest, dirs_exist_ok=True)
    return dest


@dataclass
class LocalRunHandle:
    """A run that already finished in this process or its subprocesses (local, local-pipeline)."""

    folder: Path
    final_status: str = "Completed"
    run_dir: Path | None = None  # the phitune run folder inside `folder`, if any
    tracking: str | None = None  # where the run was tracked (RunResult.tracking), when known

    @property
    def id(self) -> str:
        return str(self.folder)

    @property
    def url(self) -> str:
        return self.folder.resolve().as_uri()

    def status(self) -> str:
        return self.final_status

    def wait(self, timeout: float | None = None) -> str:
        return self.final_status

    def download(self, directory: str | Path) -> Path:
        return _copy_tree(self.folder, directory)


@dataclass
class DryRunHandle:
    """Nothing was sent: `folder` holds job.yml and request.json (the body that would be sent)."""

    folder: Path
    request: dict

    @property
    def id(self) -> str:
        return f"dry-run:{self.folder}"

    @property
    def url(self) -> str:
        return (self.folder / "request.json").resolve().as_uri()

    def status(self) -> str:
        return "DryRun"

    def wait(self, timeout: float | None = None) -> str:
        return "DryRun"

    def download(self, directory: str | Path) -> Path:
        return _copy_tree(self.folder, directory)


@dataclass
class AzureJobHandle:
    """An Azure ML job (pipeline or fine-tuning). Every call goes through phitune's error translation."""

    ml_client: object
    name: str
    studio_url: str = ""
    poll_seconds: float = 30.0

    @property
    def id(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        return self.studio_url

    def status(self) -> str:
        from phitune.targets.azure_errors import azure_call

        with azure_call(f"getting job {self.name}"):
            job = self.ml_client.jobs.get(self.name)
        self.studio_url = getattr(job, "studio_url", None) or self.studio_url
        return status_text(job.status)

    def wait(self, timeout: float | None = None) -> str:
        return wait_for_terminal_status(self.status, self.poll_seconds, timeout)

    def download(self, directory: str | Path) -> Path:
        from phitune.targets.azure_errors import azure_call

        dest = Path(directory)
        dest.mkdir(parents=True, exist_ok=True)
        with azure_call(f"downloading job {self.name}"):
            self.ml_client.jobs.download(self.name, download_path=str(dest), all=True)
        return dest


def wait_for_terminal_status(status, poll_seconds: float, timeout: float | None = None) -> str:
    """Call `status()` every `poll_seconds` until it is terminal or `timeout` seconds have passed (every remote target)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        current = status()
        if current in TERMINAL_STATUSES or (deadline is not None and time.monotonic() >= deadline):
            return current
        time.sleep(poll_seconds)


STEP_ORDER = "steps.json"  # local-pipeline: the steps in the order they ran (written before the first runs)


def local_folder_status(folder: Path) -> tuple[str, str]:
    """(status, what it means) for a local folder: a run, a local pipeline's output, or a dry run's."""
    folder = Path(folder)
    if (folder / "metrics.json").is_file() or any(folder.glob("*/metrics.json")):
        return "Completed", "finished: its outputs are in this folder"
    if (folder / "request.json").is_file():
        return "DryRun", ("a --dry-run folder: nothing was submitted; job.yml and request.json show what would be "
                          "sent (submit again without --dry-run to run it)")
    return "Incomplete", "not finished: no metrics.json (still running, stopped, or failed; see its log)"


def step_logs_in_order(folder: Path) -> list[Path]:
    """A local pipeline's step logs in run order (steps.json), else by name."""
    import json

    order_file = Path(folder) / STEP_ORDER
    if order_file.is_file():
        try:
            names = [step["name"] for step in json.loads(order_file.read_text(encoding="utf-8"))["steps"]]
        except (ValueError, KeyError, TypeError):
            names = []
        logs = [Path(folder) / "steps" / name / "std_log.txt" for name in names]
        if names:
            return [log for log in logs if log.is_file()]
    return sorted(Path(folder).glob("steps/*/std_log.txt"))
